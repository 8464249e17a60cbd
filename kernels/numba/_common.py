"""What the Numba kernels share: fastmath flags, tiling constants, value loads, host views of blocks."""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from wtraj._dtypes import BFLOAT16_BITS, is_torch_tensor

# Reassociation lets LLVM vectorise the float32 tile sums (without it a
# reduction stays scalar, about 5x slower); contraction allows FMA. No flag
# that changes NaN/Inf semantics is set: non-finite input must still show in
# the results. tests/test_pairwise.py bounds the error this admits.
FASTMATH = {"reassoc", "contract"}

# Columns summed in the input precision before a float64 accumulator takes the
# partial sum. With 8-wide vectors unrolled 4x, each lane then adds at most
# TILE/32 terms in float32: relative error below 1e-7 for positive terms.
TILE = 1024

# The kernels are compiled with nogil=True: a checkpoint reader's prefetch
# threads keep reading the next block while a kernel runs.

# At most this many column chunks, of at least MIN_CHUNK_TILES tiles each: the
# split depends on the block width only, never on the thread count, so results
# are the same on every machine; and a chunk is long enough that starting it
# and summing its partials cost little beside its work.
N_CHUNKS = 64
MIN_CHUNK_TILES = 4


@numba.njit(inline="always")
def n_column_chunks(n_tiles):
    """How many chunks a block of n_tiles tiles is split into."""
    return min(N_CHUNKS, (n_tiles + MIN_CHUNK_TILES - 1) // MIN_CHUNK_TILES)


@numba.njit(inline="always")
def add_chunks(out, partial):
    """Add each column chunk's partial sums ``partial[c]`` to ``out``, in chunk order.

    Plain loops: in a parallel kernel an array expression such as
    ``out += partial[c]`` becomes a parallel region of its own, one launch
    per chunk (measured: step_norms at N = 32, D = 4e6, 1.3 ms slower with 64 chunks).
    """
    for c in range(partial.shape[0]):
        for r in range(out.shape[0]):
            for i in range(out.shape[1]):
                out[r, i] += partial[c, r, i]


def host_array(data):
    """The NumPy view of a block's data (torch CPU tensors share their memory)."""
    if is_torch_tensor(data):
        return data.numpy()
    return data


def accumulator_zero(dtype):
    """The zero that tile sums start from: float32 for float32 and bfloat16 input, else float64."""
    return np.float32(0.0) if dtype in (np.float32, BFLOAT16_BITS) else np.float64(0.0)


@intrinsic
def load(typingctx, value):
    """The value of one block element: floats as they are, bfloat16 bits widened to float32.

    A bfloat16's bits are a float32's upper half. The widening is written as
    LLVM instructions (zero-extend, shift, reinterpret) because Numba has no
    scalar bit cast; they vectorise like a plain load. Dispatching on the
    element type keeps the kernels free of per-dtype closures.
    """
    if value == types.uint16:

        def widen(context, builder, signature, args):
            wide = builder.zext(args[0], ir.IntType(32))
            upper = builder.shl(wide, ir.Constant(ir.IntType(32), 16))
            return builder.bitcast(upper, ir.FloatType())

        return types.float32(types.uint16), widen
    if isinstance(value, types.Float):
        return value(value), lambda context, builder, signature, args: args[0]
    return None


@intrinsic
def load_two(typingctx, array, row, column):
    """``(load(array[row, column]), load(array[row, column + 1]))``: two adjacent values.

    bfloat16 bits are read as one 32-bit word (little-endian: the first
    value in its low half) and each half is put in a float32's upper half,
    the first by a shift, the second by a mask: one instruction per value
    besides the shared load, where :func:`load` takes a zero-extension and
    a shift for each. Floats are two plain loads.
    """
    if not (isinstance(array, types.Array) and array.ndim == 2):
        return None
    value = types.float32 if array.dtype == types.uint16 else array.dtype

    def emit(context, builder, signature, args):
        ary = context.make_array(array)(context, builder, value=args[0])
        index = [context.cast(builder, arg, kind, types.intp)
                 for arg, kind in zip(args[1:], signature.args[1:])]
        first = cgutils.get_item_pointer(context, builder, array, ary, index, wraparound=False)
        if array.dtype == types.uint16:
            word_type = ir.IntType(32)
            word = builder.load(builder.bitcast(first, word_type.as_pointer()), align=2)
            low = builder.shl(word, ir.Constant(word_type, 16))
            high = builder.and_(word, ir.Constant(word_type, 0xFFFF0000))
            pair = [builder.bitcast(half, ir.FloatType()) for half in (low, high)]
        else:
            second = builder.gep(first, [ir.Constant(ir.IntType(32), 1)])
            pair = [builder.load(first), builder.load(second)]
        return context.make_tuple(builder, signature.return_type, pair)

    return types.UniTuple(value, 2)(array, row, column), emit
