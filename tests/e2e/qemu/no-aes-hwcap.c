/* LD_PRELOAD shim for the QEMU test: the process sees an ARMv8 CPU without
 * the cryptography extensions, as on a Raspberry Pi 4 (Cortex-A72 in the
 * BCM2711 has no AES, PMULL or SHA instructions).
 *
 * Every QEMU CPU model has AES, so a guest cannot boot a Pi 4-like CPU. The
 * AES libraries in cloakroomd decide at run time from AT_HWCAP, read with
 * glibc's getauxval: RustCrypto's aes/polyval (cpufeatures) and ring. This
 * getauxval clears the crypto bits, so both take their software paths, the
 * frame crate reports "software" and picks RustCrypto, as on a Pi 4. Nothing
 * else changes: same binary, same build. Built by tools/qemu-test with
 * aarch64-linux-gnu-gcc; loaded with LD_PRELOAD in the guest only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/auxv.h>


/* HWCAP_* and HWCAP2_* come from <sys/auxv.h> (bits/hwcap.h, the kernel's
 * arch/arm64/include/uapi/asm/hwcap.h). */

unsigned long getauxval(unsigned long type)
{
    static unsigned long (*real)(unsigned long);
    if (!real)
        real = (unsigned long (*)(unsigned long))dlsym(RTLD_NEXT, "getauxval");
    unsigned long value = real(type);
    if (type == AT_HWCAP)
        value &= ~(HWCAP_AES | HWCAP_PMULL | HWCAP_SHA1 | HWCAP_SHA2 | HWCAP_SHA3 | HWCAP_SM3 | HWCAP_SM4 | HWCAP_SHA512);
    else if (type == AT_HWCAP2)
        value &= ~(HWCAP2_SVEAES | HWCAP2_SVEPMULL | HWCAP2_SVESHA3 | HWCAP2_SVESM4);
    return value;
}
