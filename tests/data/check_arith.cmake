# Generate arith records with sspan-datagen and run scripts/check_arith.py over them.
# -D DATAGEN=... -D PYTHON=... -D CHECKER=... -D OUT=... -D ARGS="..."
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${DATAGEN} arith ${args} -o ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sspan-datagen failed (${rc})")
endif()
execute_process(COMMAND ${PYTHON} ${CHECKER} ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_arith.py failed (${rc})")
endif()
