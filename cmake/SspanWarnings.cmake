# Warning and optimisation flags shared by every sspan target.
add_library(sspan_flags INTERFACE)
target_compile_options(sspan_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  # The CPU ops thread with src/cpu/thread_pool.h; without -fopenmp an `omp` pragma would
  # be silently ignored and its loop run on one thread.
  $<$<COMPILE_LANGUAGE:CXX>:-Werror=unknown-pragmas>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CONFIG:Release>>:-O3>
)
if(SSPAN_CPU_NATIVE)
  target_compile_options(sspan_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  target_compile_options(sspan_flags INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-march=native>)
endif()
