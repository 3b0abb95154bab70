"""The model and its numerics: loading (hub, local, embedded GGUF, the tiny test model), the CPU
attention path, the shared-prompt KV cache, mixed precision, and the self-certainty/entropy formula."""
