"""Winograd F(2x2, 3x3) convolution of 2-D float32 data: 3x3 kernels, stride 1, dilation 1.

Lavin and Gray's minimal filtering (arXiv:1509.09308): each 2 x 2 tile of
outputs is ``A^T [(G g G^T) * (B^T d B)] A`` for the 4 x 4 input patch
``d`` around it and the 3 x 3 kernel ``g``; the ``*`` is an elementwise
product of 4 x 4 matrices, summed over the input channels. So the
convolution becomes 16 matrix products (one per element of the 4 x 4
transform), each of ``tiles x C_in/groups`` by ``C_in/groups x C_out/groups``:
16 multiply-adds where the direct kernel does 36, 2.25x fewer. The
transforms add only sums (``B`` and ``A`` hold 0 and +-1); ``G`` is applied
to the weight once per call, in float64, and rounded once to float32.

Rounding: the result is the same sum in a different basis, so it is not the
direct kernels' result bit for bit. The transformed inputs are sums of up
to 4 inputs, and each output a signed sum of 9 products, which bounds the
extra error by a small multiple of the direct one (measured in the tests
against the float64 reference, with the float32 tolerance every algorithm
meets). One difference is visible with infinite inputs: a tile's transform
subtracts inputs from each other, so an ``inf`` near a tile can become a
``nan`` where the direct sum gives ``inf`` (``nan`` inputs give ``nan``
where they do in the direct sum, and maybe in the neighbouring output of
the tile too).

Loop order, per parallel task (rows of tiles, 2 output rows each, of one
image; see :func:`task_rows`): the input rows are gathered once into a
zero-padded window, and transformed into ``V[e, tile, c]`` (``e`` the 16
transform elements). Then per group and chunk of
:data:`.dense_cl.OUTPUT_CHUNK` outputs, the 16 products run on the dense
micro-kernel (:func:`.dense_cl.block_of`: 6 tiles x 64 outputs in registers
over the group's channels, the tiles of all the task's rows in one list)
into ``M[e, tile, o]``, and the output transform adds the bias and writes
the chunk's 2 x 2 tiles. Per task everything stays in L2: for 64 channels
and 28 tiles a row, the window is 59 KB, ``V`` and ``M`` 115 KB each, the
weights 256 KB. The transforms run on 16-lane vectors (scalar loops over
the channels measured 2-3x slower: 1.17 against 0.52 ms for grp2_28).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import U, aligned_buffer, aligned_empty, kernel_bias, padded_input, rows_per_task
from ._jit import inlined, jit
from ._simd import LANES, add16, load16_first, store16_first, sub16
from .dense_cl import OUTPUT_CHUNK, PIXEL_BLOCK, _gather_window, block_of, block_span

__all__ = ["PATCH", "RESIDENT_WEIGHT_BYTES", "SHORT_TASK_BYTES", "TILE", "TRANSFORMED_BYTES",
           "conv_winograd", "task_rows", "transform_weight", "winograd_channels_last"]

#: Output pixels per tile along each dim (the "2" of F(2x2, 3x3)).
TILE = 2
#: Side of the input patch and of the transformed tile: TILE + 3 - 1.
PATCH = 4
#: Bound of a task's transformed input (``V``, 16 x tiles x C_in): with the
#: products' results ``M`` (16 x tiles x 64) and a block of weights it stays
#: in a 2 MB L2.
TRANSFORMED_BYTES = 2**20
#: Transformed weights up to this size stay in a core's L2 from one task to the next,
#: so tasks stay short (their ``V`` under :data:`SHORT_TASK_BYTES`: one row of tiles
#: on the bench's layers; 1 to 8 rows measured alike there).
RESIDENT_WEIGHT_BYTES = 2**20
#: Bound of a task's ``V`` while the weights stay in L2.
SHORT_TASK_BYTES = 2**17


def transform_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """``(C_out, Cg, 3, 3)`` -> ``G g G^T`` packed as ``(16, G, chunks, Cg, n)``, float32.

    ``n`` = :data:`.dense_cl.OUTPUT_CHUNK`; a group's outputs are padded with
    zeros to ``chunks * n``. The transform is computed in float64 and rounded
    once.
    """
    c_out, c_group = weight.shape[:2]
    chunks = -(-(c_out // groups) // OUTPUT_CHUNK)
    packed = aligned_empty((PATCH * PATCH, groups, chunks, c_group, OUTPUT_CHUNK), np.float32)
    _transform_weight(weight, packed)
    return packed


@inlined
def _weight_row(a, g0, g1, g2):
    """Row ``a`` of ``G g`` at one column ``g`` of a 3x3 kernel, in float64."""
    g0, g1, g2 = np.float64(g0), np.float64(g1), np.float64(g2)
    if a == 0:
        return g0
    if a == 3:
        return g2
    if a == 1:
        return 0.5 * (g0 + g1 + g2)
    return 0.5 * (g0 - g1 + g2)


@jit(parallel=False)
def _transform_weight(weight, packed):
    """``packed[a*4 + b, g, k, c, j] = (G w[o, c] G^T)[a, b]`` for output ``o`` = the
    ``j``-th of chunk ``k`` of group ``g``; zeros for the padding outputs.

    One row ``a`` at a time: the 16 elements of one kernel's transform lie
    a whole weight apart (32 KB for 64 x 128), and 16 such streams of
    stores would share one L1 set (measured 3x slower than 4).
    """
    c_out = weight.shape[0]
    _, groups, chunks, c_group, width = packed.shape
    per_group = c_out // groups
    flat = packed.reshape(-1)
    e_step = U(groups * chunks * c_group * width)
    packed[...] = 0
    for a in range(PATCH):
        row = U(a * PATCH) * e_step
        for g in range(groups):
            for k in range(chunks):
                for c in range(c_group):
                    at = row + U(((g * chunks + k) * c_group + c) * width)
                    for j in range(min(width, per_group - k * width)):
                        w = weight[g * per_group + k * width + j, c]
                        r0 = _weight_row(a, w[0, 0], w[1, 0], w[2, 0])
                        r1 = _weight_row(a, w[0, 1], w[1, 1], w[2, 1])
                        r2 = _weight_row(a, w[0, 2], w[1, 2], w[2, 2])
                        e = at + U(j)
                        flat[e] = r0
                        flat[e + e_step] = 0.5 * (r0 + r1 + r2)
                        flat[e + U(2) * e_step] = 0.5 * (r0 - r1 + r2)
                        flat[e + U(3) * e_step] = r2


@inlined
def _columns(window, at, row, lanes):
    """``B^T d`` for one column ``d`` of a patch: ``window[at + i*row]``, i = 0..3, each
    ``lanes`` channels wide."""
    d0 = load16_first(window, at, lanes)
    d1 = load16_first(window, at + row, lanes)
    d2 = load16_first(window, at + U(2) * row, lanes)
    d3 = load16_first(window, at + U(3) * row, lanes)
    return sub16(d0, d2), add16(d1, d2), sub16(d2, d1), sub16(d1, d3)


@inlined
def _store_row(v, at, plane, lanes, t0, t1, t2, t3):
    """Store ``(t0 .. t3) B`` (one row of ``B^T d B``) at ``v[at + k*plane]``, k = 0..3."""
    store16_first(v, at, sub16(t0, t2), lanes)
    store16_first(v, at + plane, add16(t1, t2), lanes)
    store16_first(v, at + U(2) * plane, sub16(t2, t1), lanes)
    store16_first(v, at + U(3) * plane, sub16(t1, t3), lanes)


@inlined
def _transform_input(window, w0, span, channels, tiles, v, v0, plane):
    """``v[v0 + e*plane + t*C + c]`` = ``(B^T d B)[e // 4, e % 4]`` for tile ``t``'s patch
    ``d`` of the 4 rows of ``span`` pixels of C channels at ``window[w0:]``, 16 channels at
    a time."""
    step = U(channels)
    row = U(span) * step
    for t in range(tiles):
        base = w0 + U(TILE * t) * step
        out = v0 + U(t) * step
        for c in range(0, channels, LANES):
            lanes = min(LANES, channels - c)
            at = base + U(c)
            a0, b0, c0, d0 = _columns(window, at, row, lanes)
            a1, b1, c1, d1 = _columns(window, at + step, row, lanes)
            a2, b2, c2, d2 = _columns(window, at + U(2) * step, row, lanes)
            a3, b3, c3, d3 = _columns(window, at + U(3) * step, row, lanes)
            first = out + U(c)
            _store_row(v, first, plane, lanes, a0, a1, a2, a3)
            _store_row(v, first + U(4) * plane, plane, lanes, b0, b1, b2, b3)
            _store_row(v, first + U(8) * plane, plane, lanes, c0, c1, c2, c3)
            _store_row(v, first + U(12) * plane, plane, lanes, d0, d1, d2, d3)


@inlined
def _output_column(m, at, plane, lanes):
    """``A^T m`` for the column of ``M`` at ``m[at + 4*k*plane]``, k = 0..3."""
    m0 = load16_first(m, at, lanes)
    m1 = load16_first(m, at + U(4) * plane, lanes)
    m2 = load16_first(m, at + U(8) * plane, lanes)
    m3 = load16_first(m, at + U(12) * plane, lanes)
    return add16(add16(m0, m1), m2), sub16(sub16(m1, m2), m3)


@inlined
def _transform_output(m, m0, plane, bias, o0, count, out_flat, row0, rows, w_out, c_out):
    """Write ``A^T M A + bias`` for the ``count`` outputs of each tile of a row, ``M[e, t,
    o]`` at ``m[m0 + e*plane + t*n + o]``, to output rows ``row0``, ``row0 + 1`` (the first
    ``rows`` of them), outputs ``o0 ...`` of the channels_last ``out_flat`` (rows of
    ``w_out`` pixels of ``c_out``)."""
    line = U(w_out) * U(c_out)
    pixel = U(c_out)
    for t in range((w_out + 1) // TILE):
        ow = TILE * t
        cols = min(TILE, w_out - ow)
        src = m0 + U(t * OUTPUT_CHUNK)
        dst = row0 + U(ow) * pixel + U(o0)
        for o in range(0, count, LANES):
            lanes = min(LANES, count - o)
            at = src + U(o)
            p0, q0 = _output_column(m, at, plane, lanes)
            p1, q1 = _output_column(m, at + plane, plane, lanes)
            p2, q2 = _output_column(m, at + U(2) * plane, plane, lanes)
            p3, q3 = _output_column(m, at + U(3) * plane, plane, lanes)
            beta = load16_first(bias, U(o0 + o), lanes)
            y = dst + U(o)
            store16_first(out_flat, y, add16(add16(add16(p0, p1), p2), beta), lanes)
            if cols > 1:
                store16_first(out_flat, y + pixel, add16(sub16(sub16(p1, p2), p3), beta), lanes)
            if rows > 1:
                store16_first(out_flat, y + line, add16(add16(add16(q0, q1), q2), beta), lanes)
                if cols > 1:
                    store16_first(out_flat, y + line + pixel,
                                  add16(sub16(sub16(q1, q2), q3), beta), lanes)


@jit(parallel=True)
def winograd_channels_last(x, u_packed, bias, zeros, out, pad_top, pad_left, tiles, task_rows):
    """Grouped 3x3 convolution, stride 1, of channels_last float32 data.

    ``x`` is ``(N, H, W, C_in)``, ``u_packed`` comes from
    :func:`transform_weight`, ``bias`` is ``(C_out,)``, ``zeros`` holds
    :data:`.dense_cl.OUTPUT_CHUNK` zeros and ``out`` is ``(N, H_out, W_out,
    C_out)``. ``tiles`` is ``ceil(W_out / 2)``, the tiles per row; a
    parallel task computes ``task_rows`` rows of tiles of one image.
    """
    n_batch, h_in, w_in, c_in = x.shape
    _, groups, chunks, c_group = u_packed.shape[:4]
    h_out, w_out, c_out = out.shape[1], out.shape[2], out.shape[3]
    per_group = c_out // groups
    x_flat, u_flat, out_flat = x.reshape(-1), u_packed.reshape(-1), out.reshape(-1)
    span = TILE * tiles + 2
    row_size = U(span * c_in)
    tile_rows = (h_out + 1) // TILE
    tasks = (tile_rows + task_rows - 1) // task_rows
    pixel_step = U(c_in)
    taps = (1, 1, 1, c_group)
    e_size = U(groups * chunks * c_group * OUTPUT_CHUNK)
    for task in prange(n_batch * tasks):
        n = task // tasks
        first = (task % tasks) * task_rows
        count = min(task_rows, tile_rows - first)
        # Every tile of the task's rows, one list: the blocks run across rows.
        all_tiles = count * tiles
        # At least one block's worth: the tiles past the task's read zeros.
        blocked = max(all_tiles, PIXEL_BLOCK)
        v_plane = U(blocked) * pixel_step
        m_plane = U(blocked * OUTPUT_CHUNK)
        window = aligned_buffer((TILE * task_rows + 2) * span * c_in, x)
        _gather_window(x_flat, (h_in, w_in, c_in), n, TILE * first - pad_top, -pad_left,
                       TILE * count + 2, span, window)
        v = aligned_buffer(PATCH * PATCH * blocked * c_in, x)
        for r in range(count):
            _transform_input(window, U(TILE * r) * row_size, span, c_in, tiles, v,
                             U(r * tiles) * pixel_step, v_plane)
        if blocked > all_tiles:
            for e in range(PATCH * PATCH):
                v[U(e) * v_plane + U(all_tiles) * pixel_step:U(e + 1) * v_plane] = 0
        m = aligned_buffer(PATCH * PATCH * blocked * OUTPUT_CHUNK, x)
        n_blocks = (blocked + PIXEL_BLOCK - 1) // PIXEL_BLOCK
        for g in range(groups):
            for chunk in range(chunks):
                w_chunk = U((g * chunks + chunk) * c_group * OUTPUT_CHUNK)
                for e in range(PATCH * PATCH):
                    v_e = U(e) * v_plane + U(g * c_group)
                    m_e = U(e) * m_plane
                    w_e = U(e) * e_size + w_chunk
                    for block in range(n_blocks):
                        t0, pixels = block_span(block, blocked)
                        src = (zeros, U(0), U(0))
                        dst = (m, m_e + U(t0 * OUTPUT_CHUNK), U(OUTPUT_CHUNK))
                        x_block = v_e + U(t0) * pixel_step
                        block_of(v, x_block, pixel_step, U(0), taps, c_group, u_flat, w_e,
                                 src, dst, pixels)
                o0 = g * per_group + chunk * OUTPUT_CHUNK
                outputs = min(OUTPUT_CHUNK, per_group - chunk * OUTPUT_CHUNK)
                for r in range(count):
                    oh = TILE * (first + r)
                    _transform_output(m, U(r * tiles * OUTPUT_CHUNK), m_plane, bias, o0,
                                      outputs, out_flat, U((n * h_out + oh) * w_out) * U(c_out),
                                      min(TILE, h_out - oh), w_out, c_out)


def conv_winograd(spec, target: np.ndarray) -> None:
    """Compute ``spec`` (see :func:`groupconv._spec.winograd_misfit`) into ``target``, its
    C-contiguous batched output.

    Channels_first data is transposed to channels_last and back: a workspace
    of one input and one output (the kernel vectorises over channels).
    """
    if target.size == 0:
        return
    x, pads = padded_input(spec)
    channels_last = spec.layout == "channels_last"
    x4 = np.ascontiguousarray(x if channels_last else x.transpose(0, 2, 3, 1))
    h_out, w_out = spec.out_spatial
    out4 = target if channels_last else aligned_empty(
        (spec.batch, h_out, w_out, spec.c_out), spec.dtype)
    tiles = -(-w_out // TILE)
    winograd_channels_last(x4, transform_weight(spec.weight, spec.groups), kernel_bias(spec),
                           _ZEROS, out4, pads[0][0], pads[1][0], tiles,
                           task_rows(spec, tiles))
    if not channels_last:
        target[...] = out4.transpose(0, 3, 1, 2)


def task_rows(spec, tiles: int) -> int:
    """Rows of tiles per parallel task: as many as keep the transformed input ``V`` under
    :data:`TRANSFORMED_BYTES` (:data:`SHORT_TASK_BYTES` while the transformed weights fit
    :data:`RESIDENT_WEIGHT_BYTES`), at least one, with enough tasks for every thread.

    The weights are read once per task, so large layers want long tasks
    (measured, 256 -> 256 channels at 14 x 14: one row of tiles per task
    streamed the 4 MB of transformed weights from L3 once per row).
    """
    row_bytes = PATCH * PATCH * tiles * spec.c_in * spec.dtype.itemsize
    weight_bytes = PATCH * PATCH * spec.c_out * spec.weight.shape[1] * spec.dtype.itemsize
    limit = TRANSFORMED_BYTES if weight_bytes > RESIDENT_WEIGHT_BYTES else SHORT_TASK_BYTES
    bound = max(limit // row_bytes, 1)
    return rows_per_task(-(-spec.out_spatial[0] // TILE), bound,
                         per_thread=1 if spec.batch > 1 else 2)


_ZEROS = np.zeros(OUTPUT_CHUNK, dtype=np.float32)
