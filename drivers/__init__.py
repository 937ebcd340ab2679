"""Everything that touches tensors: model code, weight loaders, tokenizers, sampling."""
