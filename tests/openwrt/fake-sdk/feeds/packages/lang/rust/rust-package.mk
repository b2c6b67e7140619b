# Stand-in for openwrt/packages' lang/rust/rust-package.mk: the variables a
# Rust package sets (RUST_PKG_FEATURES, RUST_PKG_LOCKED), and
# Build/Compile/Cargo, which runs `cargo install` for the package (or the
# crate at $(1) in its source) into $(PKG_INSTALL_DIR), with the environment
# of rust-values.mk, --locked unless RUST_PKG_LOCKED is 0, and -j1 unless
# make's jobserver is passed. The command has the real one's shape and
# arguments, so `make -n` shows what the SDK would run.

RUST_INCLUDE_DIR?=$(dir $(lastword $(MAKEFILE_LIST)))
include $(RUST_INCLUDE_DIR)/rust-values.mk

RUST_PKG_LOCKED ?= 1

CARGO_PKG_VARS= \
	$(CARGO_PKG_CONFIG_VARS) \
	CC=$(HOSTCC_NOCACHE) \
	MAKEFLAGS="$(PKG_JOBS)"

CARGO_PKG_ARGS=
ifeq ($(strip $(RUST_PKG_LOCKED)),1)
  CARGO_PKG_ARGS+= --locked
endif

# $(1): the crate's directory in the source (default: MAKE_PATH)
# $(2): more arguments to cargo
define Build/Compile/Cargo
	+$(CARGO_PKG_VARS) \
	cargo install -v \
		--profile $(CARGO_PKG_PROFILE) \
		$(if $(strip $(RUST_PKG_FEATURES)),--features "$(strip $(RUST_PKG_FEATURES))") \
		--root $(PKG_INSTALL_DIR) \
		--path "$(PKG_BUILD_DIR)/$(if $(strip $(1)),$(strip $(1)),$(strip $(MAKE_PATH)))" \
		$(if $(filter --jobserver%,$(PKG_JOBS)),,-j1) \
		$(CARGO_PKG_ARGS) \
		$(2)
endef

define RustBinPackage
  ifndef Package/$(1)/install
    define Package/$(1)/install
	$$(INSTALL_DIR) $$(1)/usr/bin/
	$$(INSTALL_BIN) $$(PKG_INSTALL_DIR)/bin/* $$(1)/usr/bin/
    endef
  endif
endef

Build/Compile=$(call Build/Compile/Cargo)
