/*
 * wrong_major.c: a test plugin built for an ABI major the host does not
 * implement ({2, 0}). Not shipped.
 *
 * A host must read `abi` from the descriptor and refuse the library before
 * calling anything else in it. get_interface calls abort(), so a host that
 * calls it first kills the test process instead of passing quietly.
 *
 * Build (as the host's tests do):
 *
 *   cc -std=c11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden -shared \
 *      -I abi/include -o libwrong_major.so tests/plugins/wrong-major/wrong_major.c
 */

#include "meshpay_plugin.h"

#include <stdlib.h>

/* Never to be called: the version check comes first. */
static const void *wrong_major_get_interface(MpStr interface_id)
{
    (void)interface_id;
    abort();
}

static const MpPluginEntry wrong_major_entry = {
    /* The layout is 1.0's: only the major says "not for you". */
    .struct_size = sizeof(MpPluginEntry),
    .abi = { 2, 0 },
    .kinds = MP_KIND_TRANSPORT,
    .id = { "org.meshpay.test.wrong-major", sizeof("org.meshpay.test.wrong-major") - 1 },
    .name = { "Wrong ABI major", sizeof("Wrong ABI major") - 1 },
    .version = { "0.1.0", sizeof("0.1.0") - 1 },
    .vendor = { "meshpay tests", sizeof("meshpay tests") - 1 },
    .description = { "", 0 },
    .get_interface = wrong_major_get_interface,
};

/* Only returns the static descriptor, as every entry function must. */
MP_EXPORT const MpPluginEntry *meshpay_plugin_entry(void)
{
    return &wrong_major_entry;
}
