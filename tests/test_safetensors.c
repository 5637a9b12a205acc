/*
 * test_safetensors.c - reading safetensors files from outside: each limit
 * of adv_safetensors_parse on a file made to break it, the dtype
 * conversions, and adv_safetensors_model on export's own files (bit for
 * bit) and on files that do not fit the spec.
 */
#include "proto/proto.h"
#include "testutil.h"

#include "core/rng.h"

#include <math.h>
#include <stdint.h>

/* A file of the header text and data bytes; the length field says hlen
 * (0: the header's true length). */
static uint8_t *file_of(const char *header, const void *data, size_t dlen, uint64_t hlen,
                        size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + dlen;
    uint8_t *p = malloc(*len);
    ck_assert_ptr_nonnull(p);
    if (!hlen)
        hlen = h;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(p + 8, header, h);
    if (dlen)
        memcpy(p + 8 + h, data, dlen);
    return p;
}

/* Parse and expect failure with code and a message containing want. */
static void expect_bad(const char *header, size_t dlen, uint64_t hlen, adv_errcode code,
                       const char *want)
{
    static const uint8_t zeros[64];
    size_t len;
    uint8_t *p = file_of(header, zeros, dlen, hlen, &len);
    adv_st_file f;
    adv_error e;
    ck_assert_msg(adv_safetensors_parse(p, len, &f, &e) == -1, "accepted %s", header);
    ck_assert_int_eq(e.code, code);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    free(p);
}

START_TEST(parse_dtypes)
{
    /* F32 1.5, F16 1, -2, 2^-24 (subnormal), 65504, BF16 1, -0.5. */
    uint8_t data[4 + 8 + 4] = {0};
    float one5 = 1.5f;
    memcpy(data, &one5, 4);
    const uint16_t h[4] = {0x3C00, 0xC000, 0x0001, 0x7BFF}, bf[2] = {0x3F80, 0xBF00};
    memcpy(data + 4, h, 8);
    memcpy(data + 12, bf, 4);
    size_t len;
    uint8_t *p = file_of("{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"b\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[4,12]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                         "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}",
                         data, sizeof data, 0, &len);
    adv_st_file f;
    adv_error e;
    ck_assert_msg(adv_safetensors_parse(p, len, &f, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(f.n, 3);
    ck_assert_str_eq(f.t[0].name, "a"); /* sorted by offset */
    ck_assert_int_eq(f.t[1].ndim, 2);
    float v[4];
    adv_st_tensor_floats(&f, &f.t[0], v);
    ck_assert(v[0] == 1.5f);
    adv_st_tensor_floats(&f, &f.t[1], v);
    ck_assert(v[0] == 1.0f && v[1] == -2.0f && v[2] == ldexpf(1.0f, -24) && v[3] == 65504.0f);
    adv_st_tensor_floats(&f, &f.t[2], v);
    ck_assert(v[0] == 1.0f && v[1] == -0.5f);
    adv_st_file_free(&f);
    free(p);
}
END_TEST

START_TEST(limit_header_size)
{
    expect_bad("{}", 0, (uint64_t)ADV_ST_HEADER_MAX + 1, ADV_E_TOO_LARGE, "more than");
    expect_bad("{}", 0, 100, ADV_E_INVALID_ARGUMENT, "100-byte header in a 10-byte file");
    adv_st_file f;
    adv_error e;
    const uint8_t four[4] = {0};
    ck_assert_int_eq(adv_safetensors_parse(four, 4, &f, &e), -1);
    ck_assert(strstr(e.msg, "shorter than its length field"));
    expect_bad("{\"a\":", 0, 0, ADV_E_INVALID_ARGUMENT, "invalid safetensors header");
    expect_bad("[1]", 0, 0, ADV_E_INVALID_ARGUMENT, "not a JSON object");
}
END_TEST

START_TEST(limit_tensor_count)
{
    size_t cap = 64 * (ADV_ST_TENSORS_MAX + 2);
    char *h = malloc(cap);
    size_t o = (size_t)snprintf(h, cap, "{");
    for (int i = 0; i <= ADV_ST_TENSORS_MAX; i++)
        o += (size_t)snprintf(h + o, cap - o,
                              "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                              i ? "," : "", i);
    snprintf(h + o, cap - o, "}");
    expect_bad(h, 0, 0, ADV_E_TOO_LARGE, "4097 tensors, more than 4096");
    free(h);
}
END_TEST

#define T(name, dt, shape, b, e)                                                             \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

START_TEST(limit_offsets)
{
    expect_bad("{" T("a", "F32", "[4]", 0, 16) "}", 8, 0, ADV_E_INVALID_ARGUMENT,
               "inside the file's data");
    expect_bad("{" T("a", "F32", "[1]", 8, 4) "}", 8, 0, ADV_E_INVALID_ARGUMENT,
               "inside the file's data");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0,
               ADV_E_INVALID_ARGUMENT, "data_offsets must be");
}
END_TEST

START_TEST(limit_overlap_and_holes)
{
    expect_bad("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12, 0,
               ADV_E_INVALID_ARGUMENT, "tensors 'a' and 'b' overlap");
    expect_bad("{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12, 0,
               ADV_E_INVALID_ARGUMENT, "bytes from 4 of the 12-byte data belong to no tensor");
    expect_bad("{" T("a", "F32", "[1]", 0, 4) "}", 6, 0, ADV_E_INVALID_ARGUMENT,
               "bytes from 4 of the 6-byte data");
}
END_TEST

START_TEST(limit_dtype_and_shape)
{
    expect_bad("{" T("a", "F32", "[3]", 0, 8) "}", 8, 0, ADV_E_INVALID_ARGUMENT,
               "8 bytes, but its shape holds 3 F32 values");
    expect_bad("{" T("a", "BF16", "[3]", 0, 4) "}", 4, 0, ADV_E_INVALID_ARGUMENT,
               "shape holds 3 BF16 values");
    expect_bad("{" T("a", "I64", "[1]", 0, 8) "}", 8, 0, ADV_E_INVALID_ARGUMENT,
               "dtype 'I64' (expected F32, F16 or BF16)");
    expect_bad("{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, 0,
               ADV_E_INVALID_ARGUMENT, "at most 8 integers");
    expect_bad("{" T("a", "F32", "[-1]", 0, 4) "}", 4, 0, ADV_E_INVALID_ARGUMENT,
               "integers in [0, 2^40)");
    expect_bad("{" T("a", "F32", "[1099511627775,1099511627775]", 0, 4) "}", 4, 0,
               ADV_E_INVALID_ARGUMENT, "product under 2^40");
    expect_bad("{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 0, 4) "}", 4, 0,
               ADV_E_INVALID_ARGUMENT, "duplicate");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, ADV_E_INVALID_ARGUMENT,
               "invalid safetensors tensor 'a': missing dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, 0,
               ADV_E_INVALID_ARGUMENT, "shape must be an array");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, ADV_E_INVALID_ARGUMENT,
               "data_offsets must be [begin, end]");
    expect_bad("{\"__metadata__\":[]}", 0, 0, ADV_E_INVALID_ARGUMENT, "__metadata__");
    char name[200], h[400];
    memset(name, 'x', 150);
    name[150] = '\0';
    snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
             name);
    expect_bad(h, 4, 0, ADV_E_INVALID_ARGUMENT, "name longer than 127 bytes");
}
END_TEST

/* ----------------------------------------------------------- models */

#define SPEC "norm(0.286;0.353) conv4k3p1 relu maxpool2 fc3"
static const core_shape IN = {1, 6, 6};

/* What export serves: head, parameters, buffers. */
static uint8_t *export_of(const core_model *m, size_t *len)
{
    uint8_t *head, *tail;
    size_t hl, tl;
    ck_assert_int_eq(adv_safetensors_head(m, json_object(), &head, &hl), 0);
    ck_assert_int_eq(adv_safetensors_tail(m, &tail, &tl), 0);
    ck_assert_uint_eq(tl, 2 * sizeof(float));
    *len = hl + m->nparams * sizeof(float) + tl;
    uint8_t *p = malloc(*len);
    memcpy(p, head, hl);
    memcpy(p + hl, m->params, m->nparams * sizeof(float));
    memcpy(p + hl + m->nparams * sizeof(float), tail, tl);
    free(head);
    free(tail);
    return p;
}

START_TEST(model_round_trip)
{
    char err[CORE_ERRLEN];
    core_model *m, *back;
    ck_assert_msg(core_model_create(SPEC, IN, 3, 9, &m, err) == 0, "%s", err);
    size_t len;
    uint8_t *p = export_of(m, &len);
    adv_error e;
    ck_assert_msg(adv_safetensors_model(p, len, SPEC, IN, 3, &back, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(back->nparams, m->nparams);
    ck_assert(memcmp(back->params, m->params, m->nparams * sizeof(float)) == 0);
    /* The same logits, bit for bit, on inputs in [0, 1]. */
    float x[2 * 36], la[2 * 3], lb[2 * 3];
    for (int i = 0; i < 2 * 36; i++)
        x[i] = core_rng_uniform(4, 0, (uint64_t)i);
    ck_assert(core_model_reserve(m, 2, err) == 0 && core_model_reserve(back, 2, err) == 0);
    memcpy(la, core_model_forward(m, x, 2), sizeof la);
    memcpy(lb, core_model_forward(back, x, 2), sizeof lb);
    ck_assert(memcmp(la, lb, sizeof la) == 0);
    core_model_free(back);
    /* Another spec's constants: refused, naming the buffer. */
    ck_assert_int_eq(adv_safetensors_model(p, len, "norm(0.5;0.353) conv4k3p1 relu maxpool2 fc3",
                                           IN, 3, &back, &e), -1);
    ck_assert_msg(strstr(e.msg, "buffer '0.mean' is 0.286") != NULL, "%s", e.msg);
    /* Another layout: every missing, extra and mis-shaped tensor named. */
    ck_assert_int_eq(adv_safetensors_model(p, len, "conv4k3p1 relu maxpool2 fc3", IN, 3, &back,
                                           &e), -1);
    ck_assert_msg(strstr(e.msg, "missing '0.weight' (4x1x3x3)") &&
                      strstr(e.msg, "extra '1.weight' (4x1x3x3)") &&
                      strstr(e.msg, "extra '0.mean' (1)"),
                  "%s", e.msg);
    ck_assert_int_eq(adv_safetensors_model(p, len, "norm(0.286;0.353) conv5k3p1 relu maxpool2 fc3",
                                           IN, 3, &back, &e), -1);
    ck_assert_msg(strstr(e.msg, "'1.weight' is 4x1x3x3 in the file, expected 5x1x3x3"), "%s",
                  e.msg);
    /* A NaN weight. */
    float nan = NAN;
    memcpy(p + len - 2 * sizeof(float) - sizeof(float), &nan, sizeof nan);
    ck_assert_int_eq(adv_safetensors_model(p, len, SPEC, IN, 3, &back, &e), -1);
    ck_assert_msg(strstr(e.msg, "not finite"), "%s", e.msg);
    free(p);
    core_model_free(m);
}
END_TEST

/* Half precision: each weight read exactly as the half it was (index 0
 * is the flatten before the fc). */
START_TEST(model_from_f16)
{
    char err[CORE_ERRLEN];
    core_model *m, *back;
    ck_assert(core_model_create("fc2", (core_shape){1, 1, 2}, 2, 1, &m, err) == 0);
    const uint16_t w[6] = {0x3C00, 0x3800, 0xBC00, 0x0000, 0x3400, 0xB400};
    size_t len;
    uint8_t *p = file_of("{" T("1.weight", "F16", "[2,2]", 0, 8) "," T("1.bias", "F16", "[2]",
                                                                         8, 12) "}",
                         w, sizeof w, 0, &len);
    adv_error e;
    ck_assert_msg(adv_safetensors_model(p, len, "fc2", (core_shape){1, 1, 2}, 2, &back, &e) == 0,
                  "%s", e.msg);
    const float want[6] = {1.0f, 0.5f, -1.0f, 0.0f, 0.25f, -0.25f};
    ck_assert(memcmp(back->params, want, sizeof want) == 0);
    core_model_free(back);
    core_model_free(m);
    free(p);
}
END_TEST

static Suite *suite_safetensors(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, parse_dtypes);
    tcase_add_test(tc, limit_header_size);
    tcase_add_test(tc, limit_tensor_count);
    tcase_add_test(tc, limit_offsets);
    tcase_add_test(tc, limit_overlap_and_holes);
    tcase_add_test(tc, limit_dtype_and_shape);
    tcase_add_test(tc, model_round_trip);
    tcase_add_test(tc, model_from_f16);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_safetensors)
