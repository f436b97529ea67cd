def add_commands(sub):
    return sub
