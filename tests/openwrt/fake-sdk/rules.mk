# Stand-in for an OpenWrt SDK's rules.mk: the directories, tools and flags
# that package Makefiles use, for an x86_64 musl target whose "cross"
# compiler is the host's cc. Names and values follow openwrt/openwrt's
# rules.mk (INSTALL_* and TARGET_CONFIGURE_OPTS as there; BUILD_DIR and
# STAGING_DIR per target as build_dir/target-<arch>_musl and
# staging_dir/target-<arch>_musl).
#
# Test-only: SDK_WORK, a scratch directory for everything the build writes
# (the SDK itself, TOPDIR, stays read-only), and CONFIG_* given on make's
# command line instead of a .config.

SDK_WORK?=$(TOPDIR)/work

INCLUDE_DIR:=$(TOPDIR)/include
SCRIPT_DIR:=$(TOPDIR)/scripts
DL_DIR:=$(SDK_WORK)/dl
BUILD_DIR_BASE:=$(SDK_WORK)/build_dir
BUILD_DIR:=$(BUILD_DIR_BASE)/target-x86_64_musl
STAGING_DIR:=$(SDK_WORK)/staging_dir/target-x86_64_musl
STAGING_DIR_HOST:=$(SDK_WORK)/staging_dir/host
TMP_DIR:=$(SDK_WORK)/tmp

ARCH:=x86_64
BOARD:=x86
REAL_GNU_TARGET_NAME:=x86_64-openwrt-linux-musl
GNU_TARGET_NAME:=x86_64-openwrt-linux
GNU_HOST_NAME:=$(shell cc -dumpmachine)
HOST_ARCH:=$(firstword $(subst -, ,$(GNU_HOST_NAME)))

TARGET_CROSS:=
TARGET_CC:=cc
TARGET_CXX:=c++
TARGET_CFLAGS:=-Os -pipe
TARGET_CPPFLAGS:=
TARGET_LDFLAGS:=
TARGET_LINKER:=bfd
HOSTCC:=cc
HOSTCC_NOCACHE:=$(HOSTCC)
TARGET_CC_NOCACHE:=$(TARGET_CC)

CP:=cp -fpR
LN:=ln -sf
FIND:=find

INSTALL_BIN:=install -m0755
INSTALL_SUID:=install -m4755
INSTALL_DIR:=install -d -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600

TARGET_CONFIGURE_OPTS = \
  AR=$(TARGET_CROSS)ar \
  AS="$(TARGET_CC) -c $(TARGET_CFLAGS)" \
  LD=$(TARGET_CROSS)ld \
  NM=$(TARGET_CROSS)nm \
  CC="$(TARGET_CC)" \
  GCC="$(TARGET_CC)" \
  CXX="$(TARGET_CXX)" \
  RANLIB=$(TARGET_CROSS)ranlib \
  STRIP=$(TARGET_CROSS)strip \
  OBJCOPY=$(TARGET_CROSS)objcopy \
  OBJDUMP=$(TARGET_CROSS)objdump \
  SIZE=$(TARGET_CROSS)size

toupper=$(shell echo '$(1)' | tr '[:lower:]' '[:upper:]')
