# Stand-in for OpenWrt's include/package.mk and include/package-defaults.mk
# (openwrt/openwrt), as far as a package Makefile uses them: PKG_BUILD_DIR,
# PKG_INSTALL_DIR, PKG_JOBS, Package/Default, MAKE_VARS/MAKE_FLAGS/MAKE_PATH,
# Build/Compile/Default, USE_SOURCE_DIR, and BuildPackage with its check of
# the mandatory fields (TITLE CATEGORY SECTION VERSION).
#
# Instead of building .ipk/.apk files, BuildPackage records each package and
# the stand-in defines targets that run one step of the real build:
#   sdk-info               every package's fields and the PKG_* variables
#   sdk-prepare            Build/Prepare (USE_SOURCE_DIR: link the build dir)
#   sdk-compile            Build/Compile
#   sdk-installdev         Build/InstallDev into $(STAGING_DIR)
#   sdk-install-<package>  Package/<package>/install into $(SDK_ROOT)/<package>

SDK_ROOT?=$(SDK_WORK)/root

PKG_BUILD_DIR ?= $(BUILD_DIR)/$(if $(BUILD_VARIANT),$(PKG_NAME)-$(BUILD_VARIANT)/)$(PKG_NAME)$(if $(PKG_VERSION),-$(PKG_VERSION))
PKG_INSTALL_DIR ?= $(PKG_BUILD_DIR)/ipkg-install
PKG_BUILD_PARALLEL ?=
# The real one hands out make's jobserver; cargo sees -j1 without it.
PKG_JOBS ?= -j1

# package-defaults.mk
define Package/Default
  CONFIGFILE:=
  SECTION:=opt
  CATEGORY:=Extra packages
  DEPENDS:=
  MDEPENDS:=
  PROVIDES:=
  EXTRA_DEPENDS:=
  MAINTAINER:=$(PKG_MAINTAINER)
  SOURCE:=$(patsubst $(TOPDIR)/%,%,$(CURDIR))
  ifneq ($(PKG_VERSION),)
    ifneq ($(PKG_RELEASE),)
      VERSION:=$(PKG_VERSION)-r$(PKG_RELEASE)
    else
      VERSION:=$(PKG_VERSION)
    endif
  else
    VERSION:=$(PKG_RELEASE)
  endif
  PKGARCH:=$(BOARD)
  PRIORITY:=optional
  DEFAULT:=
  MENU:=
  SUBMENU:=
  SUBMENUDEP:=
  TITLE:=
  KCONFIG:=
  BUILDONLY:=
  HIDDEN:=
  URL:=
  VARIANT:=
endef

MAKE_VARS = \
	CFLAGS="$(TARGET_CFLAGS) $(EXTRA_CFLAGS) $(TARGET_CPPFLAGS) $(EXTRA_CPPFLAGS)" \
	CXXFLAGS="$(TARGET_CXXFLAGS) $(EXTRA_CXXFLAGS) $(TARGET_CPPFLAGS) $(EXTRA_CPPFLAGS)" \
	LDFLAGS="$(TARGET_LDFLAGS) $(EXTRA_LDFLAGS)"

MAKE_FLAGS = \
	$(TARGET_CONFIGURE_OPTS) \
	CROSS="$(TARGET_CROSS)" \
	ARCH="$(ARCH)"

MAKE_PATH = .

define Build/Compile/Default
	+$(MAKE_VARS) \
	$(MAKE) $(PKG_JOBS) -C $(PKG_BUILD_DIR)/$(MAKE_PATH) \
		$(MAKE_FLAGS) \
		$(1);
endef

# package.mk: without USE_SOURCE_DIR the real one downloads and unpacks the
# source here; the test puts the sources in place itself.
ifdef USE_SOURCE_DIR
  define Build/Prepare/Default
	rm -rf $(PKG_BUILD_DIR)
	$(if $(wildcard $(USE_SOURCE_DIR)/*),,@echo "Error: USE_SOURCE_DIR=$(USE_SOURCE_DIR) path not found"; false)
	ln -snf $(USE_SOURCE_DIR) $(PKG_BUILD_DIR)
	touch $(PKG_BUILD_DIR)/.source_dir
  endef
else
  define Build/Prepare/Default
	mkdir -p $(PKG_BUILD_DIR)
  endef
endif

Build/Prepare=$(call Build/Prepare/Default,)
Build/Compile=$(call Build/Compile/Default,)

SDK_PACKAGES:=

define BuildPackage
  $(eval $(Package/Default))
  $(eval $(Package/$(1)))

  $(foreach FIELD, TITLE CATEGORY SECTION VERSION,
    ifeq ($($(FIELD)),)
      $$(error Package/$(1) is missing the $(FIELD) field)
    endif
  )

  SDK_PACKAGES+=$(1)
  SDK_$(1)_TITLE:=$(TITLE)
  SDK_$(1)_SECTION:=$(SECTION)
  SDK_$(1)_CATEGORY:=$(CATEGORY)
  SDK_$(1)_SUBMENU:=$(SUBMENU)
  SDK_$(1)_VERSION:=$(VERSION)
  SDK_$(1)_DEPENDS:=$(DEPENDS)
  SDK_$(1)_URL:=$(URL)

  sdk-info: sdk-info-$(1)
  sdk-info-$(1):
	$$(info Package: $(1))
	$$(info Title: $$(SDK_$(1)_TITLE))
	$$(info Section: $$(SDK_$(1)_SECTION))
	$$(info Category: $$(SDK_$(1)_CATEGORY))
	$$(info Submenu: $$(SDK_$(1)_SUBMENU))
	$$(info Version: $$(SDK_$(1)_VERSION))
	$$(info Depends: $$(strip $$(SDK_$(1)_DEPENDS)))
	$$(info URL: $$(SDK_$(1)_URL))
	$$(info Description: $$(strip $$(Package/$(1)/description)))
	$$(info Conffiles: $$(strip $$(Package/$(1)/conffiles)))
	$$(info Install: $$(if $$(Package/$(1)/install),yes,no))
	$$(info )
	@:

  sdk-install-$(1):
	rm -rf $$(SDK_ROOT)/$(1)
	mkdir -p $$(SDK_ROOT)/$(1)
	$$(call Package/$(1)/install,$$(SDK_ROOT)/$(1))
endef

all: sdk-info

sdk-info: sdk-info-source
sdk-info-source:
	$(info Source: $(PKG_NAME))
	$(foreach v,PKG_VERSION PKG_RELEASE PKG_SOURCE_PROTO PKG_SOURCE_URL PKG_SOURCE_VERSION \
		PKG_MIRROR_HASH PKG_MAINTAINER PKG_LICENSE PKG_LICENSE_FILES PKG_BUILD_DEPENDS PKG_BUILD_PARALLEL \
		PKG_CONFIG_DEPENDS RUST_PKG_LOCKED,$(info $(v): $(strip $($(v)))))
	$(info )
	@:

# As package.mk's $(STAMP_PREPARED) rule.
sdk-prepare:
	@-rm -rf $(PKG_BUILD_DIR)
	@mkdir -p $(PKG_BUILD_DIR)
	$(Build/Prepare)

sdk-compile:
	$(Build/Compile)

sdk-installdev:
	mkdir -p $(STAGING_DIR) $(STAGING_DIR_HOST)
	$(call Build/InstallDev,$(STAGING_DIR),$(STAGING_DIR_HOST))

.PHONY: all sdk-info sdk-prepare sdk-compile sdk-installdev
