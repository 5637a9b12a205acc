/*
 * image.c - canvases of tiles and their PNG encoding (image.h).
 *
 * The PNG is written through libpng's write callback into a growing
 * buffer; libpng reports errors by longjmp, caught in core_png_encode.
 */
#include "image.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>

int core_canvas_init(core_canvas *cv, int rows, int cols, int th, int tw, int zoom, char *err)
{
    memset(cv, 0, sizeof *cv);
    if (rows < 1 || cols < 1 || th < 1 || tw < 1 || zoom < 1 || zoom > 16 ||
        (double)rows * th * zoom > 16384 || (double)cols * tw * zoom > 16384)
        return core_errf(err, "invalid canvas of %dx%d tiles of %dx%d at zoom %d", rows, cols, th,
                         tw, zoom);
    cv->rows = rows;
    cv->cols = cols;
    cv->th = th;
    cv->tw = tw;
    cv->zoom = zoom;
    cv->w = cols * tw * zoom + (cols + 1) * CORE_IMAGE_GUTTER;
    cv->h = rows * th * zoom + (rows + 1) * CORE_IMAGE_GUTTER;
    cv->rgb = malloc((size_t)cv->w * cv->h * 3);
    if (!cv->rgb)
        return core_errf(err, "out of memory for a %dx%d image", cv->w, cv->h);
    memset(cv->rgb, 255, (size_t)cv->w * cv->h * 3);
    return 0;
}

void core_canvas_free(core_canvas *cv)
{
    free(cv->rgb);
    cv->rgb = NULL;
}

static uint8_t byte_of(float v)
{
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return (uint8_t)(v * 255.0f + 0.5f);
}

/* Paint source pixel (y, x) of tile (r, c): a zoom x zoom block. */
static void put_pixel(core_canvas *cv, int r, int c, int y, int x, const uint8_t rgb[3])
{
    const int z = cv->zoom;
    int py = CORE_IMAGE_GUTTER + r * (cv->th * z + CORE_IMAGE_GUTTER) + y * z;
    int px = CORE_IMAGE_GUTTER + c * (cv->tw * z + CORE_IMAGE_GUTTER) + x * z;
    for (int i = 0; i < z; i++)
        for (int j = 0; j < z; j++)
            memcpy(cv->rgb + ((size_t)(py + i) * cv->w + px + j) * 3, rgb, 3);
}

void core_canvas_image(core_canvas *cv, int r, int c, const float *x, core_shape s)
{
    const size_t plane = (size_t)s.h * s.w;
    for (int y = 0; y < s.h && y < cv->th; y++)
        for (int xx = 0; xx < s.w && xx < cv->tw; xx++) {
            uint8_t p[3];
            for (int k = 0; k < 3; k++)
                p[k] = byte_of(x[(s.c == 3 ? k : 0) * plane + (size_t)y * s.w + xx]);
            put_pixel(cv, r, c, y, xx, p);
        }
}

void core_colormap_hot(float t, uint8_t rgb[3])
{
    rgb[0] = byte_of(3.0f * t);
    rgb[1] = byte_of(3.0f * t - 1.0f);
    rgb[2] = byte_of(3.0f * t - 2.0f);
}

void core_canvas_heat(core_canvas *cv, int r, int c, const float *map, int h, int w)
{
    float mx = 0.0f;
    for (int i = 0; i < h * w; i++)
        mx = map[i] > mx ? map[i] : mx;
    for (int y = 0; y < h && y < cv->th; y++)
        for (int x = 0; x < w && x < cv->tw; x++) {
            uint8_t p[3];
            core_colormap_hot(mx > 0.0f ? map[y * w + x] / mx : 0.0f, p);
            put_pixel(cv, r, c, y, x, p);
        }
}

/* ------------------------------------------------------------ encoding */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int oom;
    char *err;
} png_sink;

static void sink_write(png_structp png, png_bytep data, png_size_t n)
{
    png_sink *s = png_get_io_ptr(png);
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        uint8_t *b = realloc(s->buf, cap);
        if (!b) {
            s->oom = 1;
            png_error(png, "out of memory");
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void sink_flush(png_structp png)
{
    (void)png;
}

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_sink *s = png_get_error_ptr(png);
    core_errf(s->err, "cannot encode a PNG: %s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int core_png_encode(const core_canvas *cv, uint8_t **png_out, size_t *len, char *err)
{
    png_sink sink = {.err = err};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_png_error,
                                              on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    *png_out = NULL;
    *len = 0;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return core_errf(err, "out of memory for a PNG encoder");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(sink.buf);
        return -1;
    }
    png_set_write_fn(png, &sink, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)cv->w, (png_uint_32)cv->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < cv->h; y++)
        png_write_row(png, cv->rgb + (size_t)y * cv->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *png_out = sink.buf;
    *len = sink.len;
    return 0;
}
