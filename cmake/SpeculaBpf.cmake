# specula_bpf_skeleton(<name>): compiles ebpf/<name>.bpf.c with clang -target bpf
# (CO-RE against the committed ebpf/vmlinux/vmlinux.h), strips DWARF (BTF
# stays: CO-RE needs it), and generates <name>.skel.h with bpftool. Defines an
# INTERFACE target <name>_skel whose include dir holds the header; link it to
# use `#include "<name>.skel.h"` (struct <name>_bpf, <name>_bpf__open(), ...).
include_guard(GLOBAL)

find_program(SPECULA_BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(SPECULA_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(SPECULA_LLVM_STRIP NAMES llvm-strip llvm-strip-14)

function(specula_bpf_skeleton name)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${name}.bpf.c)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  if(SPECULA_LLVM_STRIP)
    set(strip_cmd COMMAND ${SPECULA_LLVM_STRIP} -g ${obj})
  else()
    set(strip_cmd)
  endif()
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${SPECULA_BPF_CLANG} -target bpf -g -O2 -D__TARGET_ARCH_x86
            -Wall -Werror
            -I${PROJECT_SOURCE_DIR}/ebpf/vmlinux -I${PROJECT_SOURCE_DIR}
            -MD -MF ${obj}.d -c ${src} -o ${obj}
    ${strip_cmd}
    DEPENDS ${src}
    DEPFILE ${obj}.d
    COMMENT "BPF ${name}.bpf.c"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND sh -c "${SPECULA_BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp && mv ${skel}.tmp ${skel}"
    DEPENDS ${obj}
    COMMENT "bpftool gen skeleton ${name}"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  target_include_directories(${name}_skel SYSTEM INTERFACE ${out_dir})
  add_dependencies(${name}_skel ${name}_skel_gen)
endfunction()
