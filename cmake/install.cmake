# What `cmake --install` puts on a machine and what `cpack -G DEB` packages: the binary, the
# manual page, bash and zsh completion, the mount helpers mount(8) runs for /etc/fstab lines,
# and examples (systemd units, the updatedb note, the container recipe).
include(GNUInstallDirs)

install(TARGETS artifactfs RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/doc/artifactfs.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/completion/artifactfs.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME artifactfs)
# zsh's own fpath holds share/zsh/site-functions under /usr/local; Debian's zsh adds
# /usr/share/zsh/vendor-completions for packages. The prefix is known at install time only.
install(CODE "
  set(zsh_dir site-functions)
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(zsh_dir vendor-completions)
  endif()
  file(INSTALL \"${PROJECT_SOURCE_DIR}/contrib/completion/_artifactfs\"
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/zsh/\${zsh_dir}\")
")

# mount(8) looks for mount.<type> helpers in /sbin only (libmount's FS_SEARCH_PATH), never under
# the prefix, so system-wide installs put them there (as ntfs-3g and nfs-utils do); an install
# into a home folder names its own folder.
if(CMAKE_INSTALL_PREFIX MATCHES "^/usr(/local)?$")
  set(helper_dir_default /sbin)
else()
  set(helper_dir_default ${CMAKE_INSTALL_FULL_SBINDIR})
endif()
set(ARTIFACTFS_MOUNT_HELPER_DIR ${helper_dir_default} CACHE PATH
    "Where mount.fuse.artifactfs and mount.artifactfs go (mount(8) looks in /sbin)")
# The helper names the binary's folder, known only at install time (cpack installs into /usr).
set(helper ${CMAKE_BINARY_DIR}/mount-helper/mount.fuse.artifactfs)
install(CODE "
  set(ARTIFACTFS_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/contrib/mount.fuse.artifactfs.in\" \"${helper}\" @ONLY)
")
install(PROGRAMS ${helper} DESTINATION ${ARTIFACTFS_MOUNT_HELPER_DIR})
install(PROGRAMS ${helper} DESTINATION ${ARTIFACTFS_MOUNT_HELPER_DIR} RENAME mount.artifactfs)

install(FILES ${PROJECT_SOURCE_DIR}/contrib/systemd/mnt-artifacts.mount
              ${PROJECT_SOURCE_DIR}/contrib/systemd/mnt-artifacts.automount
              ${PROJECT_SOURCE_DIR}/contrib/docker/Dockerfile
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/updatedb/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME README.updatedb.md)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME artifactfs)
set(CPACK_PACKAGE_CONTACT "artifactfs maintainers <artifactfs@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mount GitLab CI job artifacts as a directory tree (FUSE)")
set(CPACK_PACKAGE_DESCRIPTION
    "artifactfs mounts a GitLab instance's CI job artifacts with FUSE, fetching only the bytes read.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # libfuse3, libcurl, jansson, zlib from the binary
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "attr")
include(CPack)
