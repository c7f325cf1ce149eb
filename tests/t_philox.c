/* core/philox.h against the published Philox4x32-10 known answers (Random123,
 * tests/kat_vectors) and the statistics of its uniform and normal draws. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/philox.h"
#include "check.h"

/* One kat_vectors line: counter[4], key[2] -> result[4], as printed there. */
typedef struct {
    uint32_t ctr[4], key[2], expect[4];
} Kat;

static const Kat KATS[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

#define DRAWS 1000000

static uint64_t join(uint32_t lo, uint32_t hi) { return (uint64_t)hi << 32 | lo; }

/* philox.h: counter = (block lo, block hi, stream lo, stream hi), key = (seed lo, seed hi). */
static void check_kats(void)
{
    for (size_t i = 0; i < sizeof KATS / sizeof *KATS; i++) {
        const Kat *k = &KATS[i];
        philox_u32x4 r = philox4x32_10(join(k->key[0], k->key[1]), join(k->ctr[2], k->ctr[3]),
                                       join(k->ctr[0], k->ctr[1]));
        printf("KAT %zu: %08x %08x %08x %08x\n", i, r.v[0], r.v[1], r.v[2], r.v[3]);
        for (int w = 0; w < 4; w++) CHECK(r.v[w] == k->expect[w]);
    }
}

/* The documented mappings, checked on the all-zero KAT block (seed 0, stream 0, block 0):
 * uniform i = word i of the block as ((u >> 9) + 0.5) / 2^23; normal 0 = Box-Muller on
 * words 0 and 1, normal 1 on words 2 and 3. */
static void check_mappings(void)
{
    const uint32_t *w = KATS[0].expect;
    for (int i = 0; i < 4; i++) CHECK(philox_uniform(0, 0, i) == (float)(((w[i] >> 9) + 0.5) / 8388608.0));
    for (int i = 0; i < 2; i++) {
        double u1 = ((w[2 * i] >> 9) + 0.5) / 8388608.0, u2 = ((w[2 * i + 1] >> 9) + 0.5) / 8388608.0;
        CHECK(philox_normal(0, 0, i) == (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2)));
    }
    CHECK(philox_u32_to_uniform(0) > 0);
    CHECK(philox_u32_to_uniform(0xffffffffu) < 1);
}

/* Mean and variance (accumulated in double) of DRAWS values; also tracks the range. */
typedef struct {
    double mean, var, lo, hi;
} Moments;

static Moments moments(float (*draw)(uint64_t, uint64_t, uint64_t), uint64_t seed, uint64_t stream)
{
    double s = 0, s2 = 0;
    Moments m = {0, 0, INFINITY, -INFINITY};
    for (long i = 0; i < DRAWS; i++) {
        double x = draw(seed, stream, (uint64_t)i);
        s += x;
        s2 += x * x;
        m.lo = fmin(m.lo, x);
        m.hi = fmax(m.hi, x);
    }
    m.mean = s / DRAWS;
    m.var = s2 / DRAWS - m.mean * m.mean;
    return m;
}

/* Bounds are 5 standard errors of the estimate for 1e6 draws: mean sd/1e3; variance
 * sqrt(mu4 - sigma^4)/1e3 (uniform: mu4 = 1/80; normal: mu4 = 3). */
static void check_statistics(void)
{
    Moments u = moments(philox_uniform, 42, 7);
    printf("uniform: mean %.6f var %.6f in [%.9g, %.9g]\n", u.mean, u.var, u.lo, u.hi);
    CHECK_NEAR(u.mean, 0.5, 5 * sqrt(1.0 / 12) / 1e3);
    CHECK_NEAR(u.var, 1.0 / 12, 5 * sqrt(1.0 / 80 - 1.0 / 144) / 1e3);
    CHECK(u.lo > 0 && u.hi < 1);
    Moments g = moments(philox_normal, 42, 8);
    printf("normal: mean %.6f var %.6f\n", g.mean, g.var);
    CHECK_NEAR(g.mean, 0, 5e-3);
    CHECK_NEAR(g.var, 1, 5 * sqrt(2.0) / 1e3);
}

/* Different seeds, streams and blocks must give different words (no aliasing of the
 * 64-bit fields onto each other). */
static void check_addressing(void)
{
    philox_u32x4 a = philox4x32_10(1, 0, 0), b = philox4x32_10(0, 1, 0), c = philox4x32_10(0, 0, 1),
                 d = philox4x32_10((uint64_t)1 << 32, 0, 0), e = philox4x32_10(0, (uint64_t)1 << 32, 0),
                 f = philox4x32_10(0, 0, (uint64_t)1 << 32);
    const philox_u32x4 *all[] = {&a, &b, &c, &d, &e, &f};
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++) CHECK(all[i]->v[0] != all[j]->v[0]);
}

int main(void)
{
    check_kats();
    check_mappings();
    check_statistics();
    check_addressing();
    return check_exit("philox");
}
