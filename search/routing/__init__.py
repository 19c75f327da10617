"""Routing with a trained router: its offsets (``offsets``), its logits and decisions over
data (``inference``), and the saved router in use (``router``: texts or embeddings in, LLM names
out). Used by results, the driver, the API, the server and the command line."""
