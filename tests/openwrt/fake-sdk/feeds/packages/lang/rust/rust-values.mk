# Stand-in for openwrt/packages' lang/rust/rust-values.mk: the Rust target
# triple, RUST_ARCH_DEPENDS, and the cargo environment a package build gets
# (CARGO_PKG_CONFIG_VARS: the release profile tuned for size, panic=unwind,
# the target's linker, -crt-static so libraries can be dlopen'ed). Values as
# in the packages feed at 0521bb5 (see /work/shared/notes/openwrt.md).
#
# Test-only: SDK_RUST_PANIC=abort gives the defaults of the newer
# rust-values.mk in openwrt.git's include/ for non-debug builds (panic=abort
# in the profile and -Cpanic=abort in RUSTFLAGS), to check that a package
# can insist on unwinding.

RUSTC_HOST_ARCH:=$(HOST_ARCH)-unknown-linux-gnu
RUSTC_TARGET_ARCH?=$(subst openwrt,unknown,$(REAL_GNU_TARGET_NAME))
CARGO_HOME:=$(DL_DIR)/cargo

SDK_RUST_PANIC?=unwind

CARGO_RUSTFLAGS+=-Ctarget-feature=-crt-static $(RUSTC_LDFLAGS)
ifeq ($(SDK_RUST_PANIC),abort)
  CARGO_RUSTFLAGS+=-Cpanic=abort
endif

RUST_ARCH_DEPENDS:=@(aarch64||arm||i386||loongarch64||mips||mips64||mips64el||mipsel||powerpc||powerpc64||riscv64||x86_64)

CARGO_PKG_CONFIG_VARS= \
	CARGO_BUILD_TARGET=$(RUSTC_TARGET_ARCH) \
	CARGO_HOME=$(CARGO_HOME) \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	CARGO_PROFILE_RELEASE_DEBUG=false \
	CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=false \
	CARGO_PROFILE_RELEASE_LTO=true \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
	CARGO_PROFILE_RELEASE_PANIC=$(SDK_RUST_PANIC) \
	CARGO_PROFILE_RELEASE_RPATH=false \
	CARGO_TARGET_$(subst -,_,$(call toupper,$(RUSTC_TARGET_ARCH)))_LINKER=$(TARGET_CC_NOCACHE) \
	RUSTFLAGS="$(CARGO_RUSTFLAGS)" \
	TARGET_CC=$(TARGET_CC_NOCACHE) \
	TARGET_CFLAGS="$(TARGET_CFLAGS) $(RUSTC_CFLAGS)"

CARGO_PKG_PROFILE:=$(if $(CONFIG_DEBUG),dev,release)
