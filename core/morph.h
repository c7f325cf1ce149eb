/* Binary morphology on mask stacks [pages,h,w] (nonzero = foreground): connected
 * components, small-object removal, hole filling, and per-object measurements following
 * skimage.measure.regionprops. Implemented in core/morph.c. */
#ifndef SDSEG_MORPH_H
#define SDSEG_MORPH_H

#include <stdint.h>

/* Labels 0 (background) and 1..*count for the objects, numbered in raster order of
 * their first pixel (page, row, column). conn is 4 or 8 within a slice. Without link3d
 * each slice is labelled on its own (numbering continues across slices); with link3d
 * objects also connect across adjacent slices: conn 4 -> 6-connectivity (shared faces),
 * conn 8 -> 26-connectivity (any shared corner), as skimage.measure.label in 3D. */
int morph_label(const uint8_t *mask, int pages, int h, int w, int conn, int link3d, int32_t *labels, int *count);

/* Clears objects of fewer than min_area pixels (voxels with link3d), like
 * skimage.morphology.remove_small_objects(min_size=min_area). */
int morph_remove_small(uint8_t *mask, int pages, int h, int w, int conn, int link3d, long min_area);

/* Slice by slice, sets to 1 every background region that does not touch the slice
 * border (background 4-connected, as scipy.ndimage.binary_fill_holes). */
int morph_fill_holes(uint8_t *mask, int pages, int h, int w);

/* One object's cross-section in one slice (for 2-D labels: one object). Coordinates are
 * pixel indices (row y, column x); conventions are skimage's. */
typedef struct {
    int id, slice;
    long area;                       /* pixels */
    double cy, cx;                   /* centroid */
    int min_y, min_x, max_y, max_x;  /* bounding box, max exclusive */
    double equiv_diameter;           /* sqrt(4 area / pi) */
    double major_axis, minor_axis;   /* 4 sqrt(eigenvalues of the inertia tensor) */
    double eccentricity;             /* sqrt(1 - l2 / l1); 0 for a disk, -> 1 for a line */
    double orientation;              /* radians in [-pi/2, pi/2]: angle from the row (y) axis
                                        to the major axis, counter-clockwise */
    double perimeter;                /* skimage.measure.perimeter(neighborhood=4): boundary
                                        pixels (4-connected erosion) weighted 1, sqrt 2 or
                                        (1 + sqrt 2)/2 by their boundary neighbours; a filled
                                        a x b rectangle gives 2(a + b) - 4 */
    double solidity;                 /* area / pixels whose centre lies in the convex hull of
                                        the pixels' edge midpoints (skimage's convex image):
                                        1 for a rectangle, 0.963 for a digital disk of radius 20 */
} Region;

/* Measures every (label, slice) pair present in labels[pages,h,w] (labels 1..count),
 * ordered by slice then label. *out is malloc'd (free it), *n its length. */
int morph_regions(const int32_t *labels, int pages, int h, int w, int count, Region **out, long *n);

#endif
