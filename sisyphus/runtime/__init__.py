"""Where models run (device, dtype), why CUDA is or is not usable, and memory in use."""
