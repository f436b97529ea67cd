"""Measuring images: the per-image analysis a worker runs (detection, landmarks, embeddings), the
model-time accounting, LFW verification of a recognizer, and identification from released geometry."""
