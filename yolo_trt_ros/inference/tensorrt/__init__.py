"""TensorRT backend: version compatibility, engine build and cache, CUDA context, GPU kernels."""
