"""Private: the speed machinery behind ``helpers``' public functions. Students need none of it.

What students call (:func:`helpers.get_CINIC10_data`, :func:`helpers.test_model`, ...) is written
to be read; what makes it fast lives here, each module documenting the measurement it answers
(figures in the course repository's benchmark history):

* :mod:`.allocator`: a steady glibc mmap threshold for CPU evaluation (no page faults per batch);
* :mod:`.inference`: the per-device batch sizes and the CPU and double-buffered CUDA loops
  behind :func:`helpers.predict`;
* :mod:`.decode`: the CINIC-10 archive and folder reader with parallel PNG decoding and the
  memory-mapped array cache behind :func:`helpers.get_CINIC10_data`.

Names here may change between releases without notice.
"""
