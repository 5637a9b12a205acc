/*
 * image.h - pictures for people: a canvas of RGB tiles (inputs, heat maps,
 * perturbations) encoded as PNG in memory with libpng.
 *
 * A canvas is a grid of equal tiles with a 2-pixel white gutter, each
 * source pixel drawn as a zoom x zoom block (small images are hard to see
 * at their own size); tiles
 * hold one example (C x H x W floats in [0, 1], gray or RGB), a heat map
 * (H x W, drawn with the "hot" colour map black -> red -> yellow -> white,
 * scaled so that its largest value is white), or a colour-bar legend.
 */
#ifndef CORE_IMAGE_H
#define CORE_IMAGE_H

#include "common.h"

#define CORE_IMAGE_GUTTER 2

typedef struct {
    int rows, cols;        /* tiles */
    int th, tw;            /* tile size, source pixels */
    int zoom;              /* canvas pixels per source pixel, each way */
    int w, h;              /* canvas size, pixels */
    uint8_t *rgb;          /* h x w x 3 */
} core_canvas;

int core_canvas_init(core_canvas *cv, int rows, int cols, int th, int tw, int zoom, char *err);
void core_canvas_free(core_canvas *cv);

/* Draw an example (values clipped to [0, 1]) into tile (r, c). */
void core_canvas_image(core_canvas *cv, int r, int c, const float *x, core_shape s);
/* Draw a heat map of h x w non-negative values into tile (r, c), scaled by
 * its maximum (an all-zero map stays black). */
void core_canvas_heat(core_canvas *cv, int r, int c, const float *map, int h, int w);

/* The "hot" colour of t in [0, 1]. */
void core_colormap_hot(float t, uint8_t rgb[3]);

/* Encode an RGB8 canvas as PNG; *png is malloc'ed (*len bytes). */
int core_png_encode(const core_canvas *cv, uint8_t **png, size_t *len, char *err);

#endif
