# pcapd: `make` builds build/pcapd and build/pcapctl, `make test` runs the whole
# suite, `make run` starts a controller and a local agent (pcapd up, data in
# ./var). Meson + ninja do the building; this file only
# chains the steps and installs missing Debian packages first.
#
#   make SANITIZE=1 test   the same suite under ASan+UBSan (build dir build-asan)

SANITIZE ?=
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
MESON_OPTS = -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
else
BUILD ?= build
MESON_OPTS =
endif
WERROR ?= $(if $(CI),true,false)

.PHONY: all deps test run clean

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS) -Dwerror=$(WERROR)

test: all
	scripts/run-tests.sh $(BUILD)

run: all
	$(BUILD)/pcapd up --data var

clean:
	rm -rf build build-asan
