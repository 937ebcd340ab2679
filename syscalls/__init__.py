"""The llmos ABI: request, reply, event and error types shared by the kernel and its clients."""
