/*
 * html.c - the HTML around `advctl report`'s content: escaping, the page's
 * head with its one inline style sheet, and pictures inlined as data:
 * URIs after checking that they are PNG files.
 *
 * Format: an HTML5 document, UTF-8, that refers to nothing outside
 * itself: no scripts, no external style sheets or fonts, every picture
 * a data:image/png;base64 URI or inline SVG (svg.c).
 */
#include "client/advctl.h"

#include <stdlib.h>
#include <string.h>

void html_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Printed into the page as it is: no user text in here. */
static const char style[] =
    "body{font-family:sans-serif;font-size:15px;line-height:1.4;color:#1a1a1a;margin:0 auto;"
    "max-width:1240px;padding:0 16px 40px}\n"
    "h1{font-size:1.6em;margin:18px 0 4px}h2{font-size:1.25em;border-bottom:2px solid #ccc;"
    "padding-bottom:3px;margin-top:32px}h3{font-size:1.05em;margin:18px 0 6px}\n"
    ".meta{color:#555}\n"
    "table{border-collapse:collapse;margin:8px 0;font-size:0.92em}\n"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "th{background:#f0f0f0}\n"
    ".plots{display:flex;flex-wrap:wrap;gap:12px 20px}\n"
    ".tables{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}\n"
    "figure.plot{margin:0;flex:1 1 520px;max-width:610px;min-width:300px}\n"
    "svg.plot{width:100%;height:auto;font-size:12px;background:#fff}\n"
    "svg.plot text{fill:#222}svg.plot text.title{font-size:14px;font-weight:bold}\n"
    "svg.plot .grid{stroke:#e3e3e3}svg.plot .tick{stroke:#888}\n"
    "svg.plot .frame{fill:none;stroke:#888}svg.plot .ref{stroke:#999;stroke-dasharray:4 4}\n"
    "figcaption{font-size:0.88em;color:#444;margin:2px 0 0 8px}\n"
    ".todo{background:#f4f6fb;border-left:4px solid #6b83b8;padding:6px 10px;margin:8px 0}\n"
    ".warn{background:#fff4e0;border-left:4px solid #d55e00;padding:6px 10px;margin:6px 0}\n"
    ".running{background:#e8f4fb;border-left:4px solid #0072b2;padding:8px 12px;margin:10px 0}\n"
    "code{background:#f2f2f2;padding:1px 4px;border-radius:3px}\n"
    ".pics{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}\n"
    ".pics figure{margin:0}.pics img{image-rendering:pixelated;max-width:100%;height:auto;"
    "border:1px solid #ccc}\n"
    ".flip{color:#b34400;font-weight:bold}\n"
    ".swatch{margin-right:5px}td:first-child{white-space:nowrap}\n";

void html_begin(FILE *f, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    html_escape(f, title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", style);
}

void html_end(FILE *f)
{
    fputs("</body>\n</html>\n", f);
}

int html_png(FILE *f, const char *b64, const char *alt)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *bytes;
    size_t n;
    adv_error e;
    if (!b64 || adv_base64_decode(b64, strlen(b64), &bytes, &n, &e))
        return -1;
    int ok = n > 24 && !memcmp(bytes, sig, 8) && !memcmp(bytes + 12, "IHDR", 4);
    /* IHDR: big-endian width and height. Small pictures (a unit's filters)
     * are enlarged to about 160 pixels on their long side, pixels square. */
    unsigned w = ok ? (unsigned)bytes[16] << 24 | bytes[17] << 16 | bytes[18] << 8 | bytes[19] : 0;
    unsigned h = ok ? (unsigned)bytes[20] << 24 | bytes[21] << 16 | bytes[22] << 8 | bytes[23] : 0;
    free(bytes);
    if (!ok || !w || !h)
        return -1;
    unsigned side = w > h ? w : h, zoom = side < 96 ? (160 + side - 1) / side : 1;
    zoom = zoom > 16 ? 16 : zoom;
    fputs("<img alt=\"", f);
    html_escape(f, alt);
    fprintf(f, "\" width=\"%u\" height=\"%u\" src=\"data:image/png;base64,%s\">", w * zoom,
            h * zoom, b64);
    return 0;
}
