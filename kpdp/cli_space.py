"""CLI commands for the identity space, the mechanism and the anonymiser (filled in later)."""


def add_commands(sub):
    return sub
