# Warning and optimisation flags shared by every sspan target.
add_library(sspan_flags INTERFACE)
target_compile_options(sspan_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CONFIG:Release>>:-O3>
)
if(SSPAN_CPU_NATIVE)
  target_compile_options(sspan_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  target_compile_options(sspan_flags INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-march=native>)
endif()
