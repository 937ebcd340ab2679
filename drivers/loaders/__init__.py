"""Weight loaders: HF safetensors folders, GGUF files, and the model-name registry."""
