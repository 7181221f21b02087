/* Peak arithmetic rate of one core, by instruction loops with no memory traffic.
 *
 * fp32: 10 independent chains of 256-bit FMA (vfmadd231ps), 16 FLOPs each.
 * int8: the AVX2 int8 dot product without VNNI, as onnxruntime's and oneDNN's int8 GEMMs do it:
 *       vpmaddubsw (u8 x s8 -> s16 pairs) + vpmaddwd (pairs -> s32) + vpaddd, 32 multiply-adds per
 *       three instructions (64 ops), 4 independent chains.
 * Usage: cpu_peak_kernels fp32|int8 SECONDS  -> prints operations per second of this thread.
 * Build: cc -O2 -mavx2 -mfma cpu_peak_kernels.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void fp32_block(long n) {
    __asm__ volatile(
        "vxorps %%ymm0, %%ymm0, %%ymm0\n"
        "vmovaps %%ymm0, %%ymm1\n vmovaps %%ymm0, %%ymm2\n vmovaps %%ymm0, %%ymm3\n"
        "vmovaps %%ymm0, %%ymm4\n vmovaps %%ymm0, %%ymm5\n vmovaps %%ymm0, %%ymm6\n"
        "vmovaps %%ymm0, %%ymm7\n vmovaps %%ymm0, %%ymm8\n vmovaps %%ymm0, %%ymm9\n"
        "vmovaps %%ymm0, %%ymm10\n vmovaps %%ymm0, %%ymm11\n"
        "1:\n"
        "vfmadd231ps %%ymm10, %%ymm11, %%ymm0\n vfmadd231ps %%ymm10, %%ymm11, %%ymm1\n"
        "vfmadd231ps %%ymm10, %%ymm11, %%ymm2\n vfmadd231ps %%ymm10, %%ymm11, %%ymm3\n"
        "vfmadd231ps %%ymm10, %%ymm11, %%ymm4\n vfmadd231ps %%ymm10, %%ymm11, %%ymm5\n"
        "vfmadd231ps %%ymm10, %%ymm11, %%ymm6\n vfmadd231ps %%ymm10, %%ymm11, %%ymm7\n"
        "vfmadd231ps %%ymm10, %%ymm11, %%ymm8\n vfmadd231ps %%ymm10, %%ymm11, %%ymm9\n"
        "dec %0\n jnz 1b\n"
        : "+r"(n)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "cc");
}

static void int8_block(long n) {
    __asm__ volatile(
        "vpxor %%ymm0, %%ymm0, %%ymm0\n"
        "vmovdqa %%ymm0, %%ymm1\n vmovdqa %%ymm0, %%ymm2\n vmovdqa %%ymm0, %%ymm3\n"
        "vpcmpeqw %%ymm12, %%ymm12, %%ymm12\n vpsrlw $15, %%ymm12, %%ymm12\n" /* int16 ones */
        "vmovdqa %%ymm12, %%ymm10\n vmovdqa %%ymm12, %%ymm11\n"
        "1:\n"
        "vpmaddubsw %%ymm10, %%ymm11, %%ymm4\n vpmaddubsw %%ymm10, %%ymm11, %%ymm5\n"
        "vpmaddubsw %%ymm10, %%ymm11, %%ymm6\n vpmaddubsw %%ymm10, %%ymm11, %%ymm7\n"
        "vpmaddwd %%ymm12, %%ymm4, %%ymm4\n vpmaddwd %%ymm12, %%ymm5, %%ymm5\n"
        "vpmaddwd %%ymm12, %%ymm6, %%ymm6\n vpmaddwd %%ymm12, %%ymm7, %%ymm7\n"
        "vpaddd %%ymm4, %%ymm0, %%ymm0\n vpaddd %%ymm5, %%ymm1, %%ymm1\n"
        "vpaddd %%ymm6, %%ymm2, %%ymm2\n vpaddd %%ymm7, %%ymm3, %%ymm3\n"
        "dec %0\n jnz 1b\n"
        : "+r"(n)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm10", "xmm11", "xmm12",
          "cc");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s fp32|int8 SECONDS\n", argv[0]);
        return 2;
    }
    int fp32 = strcmp(argv[1], "fp32") == 0;
    double ops_per_iteration = fp32 ? 10 * 16.0 : 4 * 64.0;
    double seconds = atof(argv[2]), done = 0, start = now(), elapsed = 0;
    long block = 1000000;
    while (elapsed < seconds) {
        if (fp32) fp32_block(block); else int8_block(block);
        done += block * ops_per_iteration;
        elapsed = now() - start;
    }
    printf("%.6e\n", done / elapsed);
    return 0;
}
