# The Debian package (issue 17): `cpack -G DEB` in a build tree, or
# `cmake --build build --target package`. Built from the same binaries as the
# tree's tests; nothing is recompiled for it.
#
# What it installs (prefix /usr whatever CMAKE_INSTALL_PREFIX says: the
# binaries find everything else by fixed paths):
#   /usr/bin/speculad, /usr/bin/specula (`specula mcp` is a subcommand)
#   /etc/specula/policies/*.toml              conffiles: operators edit them
#   /usr/lib/systemd/system/speculad.{service,socket}
#   /usr/lib/sysusers.d/specula.conf          the `specula` group
#   /usr/lib/specula/setup.sh                 CRIU's private prefix, run by postinst
#   /usr/share/doc/specula/*.md
# The maintainer scripts are packaging/debian/{postinst,prerm,postrm}; what
# they do and undo is described at their top. tests/packaging/ builds,
# installs, runs and purges the package on this machine.
include(GNUInstallDirs)

set(SPECULA_DEB_STAGE ${CMAKE_BINARY_DIR}/packaging)
# The units name the binaries' path: /usr/local/bin for a hand install
# (their comments say how), /usr/bin in the package.
foreach(unit speculad.service speculad.socket)
  file(READ ${CMAKE_SOURCE_DIR}/packaging/${unit} text)
  string(REPLACE "/usr/local/bin/" "/usr/bin/" text "${text}")
  string(REPLACE "/usr/local/share/doc/" "/usr/share/doc/" text "${text}")
  file(WRITE ${SPECULA_DEB_STAGE}/${unit} "${text}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/packaging/${unit})
endforeach()

# Component "deb": only the package carries these (EXCLUDE_FROM_ALL keeps
# them out of a plain `cmake --install`, which must not write to /etc).
set(specula_deb_policies default.toml sysadmin.toml kernel-tuning.toml)
list(TRANSFORM specula_deb_policies PREPEND ${CMAKE_SOURCE_DIR}/policies/)
install(FILES ${specula_deb_policies} DESTINATION /etc/specula/policies
        COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${SPECULA_DEB_STAGE}/speculad.service ${SPECULA_DEB_STAGE}/speculad.socket
        DESTINATION /usr/lib/systemd/system COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/specula.sysusers
        DESTINATION /usr/lib/sysusers.d RENAME specula.conf COMPONENT deb EXCLUDE_FROM_ALL)
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/setup.sh
        DESTINATION /usr/lib/specula COMPONENT deb EXCLUDE_FROM_ALL)
file(GLOB specula_docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${specula_docs} ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION /usr/share/doc/specula COMPONENT deb EXCLUDE_FROM_ALL)

# conffiles: every file under /etc (dpkg keeps an operator's edits on
# upgrade and removes them only on purge).
set(specula_conffiles "")
foreach(f default.toml sysadmin.toml kernel-tuning.toml)
  string(APPEND specula_conffiles "/etc/specula/policies/${f}\n")
endforeach()
file(WRITE ${SPECULA_DEB_STAGE}/conffiles "${specula_conffiles}")
foreach(script postinst prerm postrm)
  configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/${script} ${SPECULA_DEB_STAGE}/${script}
                 COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
                 GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME specula)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "specula maintainers <specula@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "speculative sandboxes for AI agents' shell actions (daemon, CLI, MCP server)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
# Library dependencies from the binaries (dpkg-shlibdeps, from dpkg-dev);
# the tools the daemon runs by name on top.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "btrfs-progs, e2fsprogs, util-linux, systemd")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "slirp4netns")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${SPECULA_DEB_STAGE}/conffiles ${SPECULA_DEB_STAGE}/postinst
    ${SPECULA_DEB_STAGE}/prerm ${SPECULA_DEB_STAGE}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Release binaries: debug info stays in the build tree.
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
# The binaries (default component) and the package's own files; not the
# share/ copy of the policies a plain install makes (component share_policies).
set(CPACK_INSTALL_CMAKE_PROJECTS
    "${CMAKE_BINARY_DIR};specula;Unspecified;/"
    "${CMAKE_BINARY_DIR};specula;deb;/")
include(CPack)
