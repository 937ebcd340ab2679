"""The torch driver: Llama-family model code over a paged KV cache."""
