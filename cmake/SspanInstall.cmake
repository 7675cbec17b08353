# Install rules and the exported CMake package: find_package(sspan) -> sspan::sspan.
include(CMakePackageConfigHelpers)

install(TARGETS sspan sspan_flags EXPORT sspanTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/sspan DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sspanTargets NAMESPACE sspan::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sspan)

configure_package_config_file(cmake/sspanConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/sspanConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sspan)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/sspanConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/sspanConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/sspanConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sspan)
