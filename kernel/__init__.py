"""The resident kernel: process table, page allocator, scheduler and engine loop."""
