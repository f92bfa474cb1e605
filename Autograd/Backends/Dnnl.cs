using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Autograd.Backends;

/// <summary>The three products that close a convolution under differentiation (see Ops/Convolution.cs): the convolution
/// itself, its adjoint in the input (the transposed convolution) and its derivative in the weight.</summary>
internal enum ConvPass
{
    /// <summary>y = conv(x, w): operands x, w; result y.</summary>
    Forward,
    /// <summary>x = conv^T(u, w): operands u (output-shaped), w; result x (input-shaped).</summary>
    Adjoint,
    /// <summary>w = d/dw &lt;u, conv(x, w)&gt;: operands x, u; result w.</summary>
    Weight,
}

/// <summary>Float32 convolutions on oneDNN 2.x (<c>libdnnl.so.2</c>, Debian's <c>libdnnl2</c>, the library behind
/// PyTorch's CPU convolutions), used by the native backends when it loads. Tensors stay NCHW: every call reorders its
/// operands into the blocked layouts the kernel oneDNN chose wants (as PyTorch does), into per-thread buffers kept between
/// calls, and the result back. Primitives are created once per geometry and pass and cached; their scratchpad is passed
/// per call, so several threads may run the same primitive. <c>AUTOGRAD_DNNL=0</c> turns it off (the managed kernels run).</summary>
internal static unsafe partial class Dnnl
{
    private const string Lib = "libdnnl.so.2";
    private const int Success = 0, F32 = 3, CpuEngine = 1, StreamDefault = 1, ForwardTraining = 64, ForwardInference = 96;
    private const int AlgDirect = 1, AlgWinograd = 2, EltwiseRelu = 0x1f, TagAny = 1, TagABc16b = 47, TagABcd16b = 69, TagABcde16b = 112, TagNchw = 5, ScratchpadUser = 1, QueryImplInfo = 8;
    private const int ArgSrc = 1, ArgDst = 17, ArgWeights = 33, ArgBias = 41, ArgDiffSrc = 129, ArgDiffDst = 145, ArgDiffWeights = 161;
    private const int ArgFrom = 1, ArgTo = 17, ArgScratchpad = 80;
    private const int QuerySrc = 129, QueryDiffSrc = 130, QueryWeights = 131, QueryDiffWeights = 132, QueryDst = 133, QueryDiffDst = 134, QueryScratchpad = 136;
    // Winograd transforms the weights on every call where they are not kept: it pays from about this many output pixels per
    // channel (N * H * W; measured on ResNet-18: 2.5x faster than direct on 32 x 32x32 planes, slower at batch 1 and on 8x8
    // planes). With the transformed weights kept (inference), at any size.
    private const long WinogradMinOutputs = 16384;
    // dnnl_memory_desc_t is 696 bytes and dnnl_convolution_desc_t 5,976 in oneDNN 2.6; both are only ever passed by pointer.
    private const int MdBytes = 1024, OpDescBytes = 8192;

    [StructLayout(LayoutKind.Sequential)]
    private struct ExecArg { public int Arg; public IntPtr Memory; }

    [StructLayout(LayoutKind.Sequential)]
    private struct Version { public int Major, Minor, Patch; }

    [LibraryImport(Lib)] private static partial Version* dnnl_version();
    [LibraryImport(Lib)] private static partial int dnnl_engine_create(out IntPtr engine, int kind, nuint index);
    [LibraryImport(Lib)] private static partial int dnnl_stream_create(out IntPtr stream, IntPtr engine, uint flags);
    [LibraryImport(Lib)] private static partial int dnnl_memory_desc_init_by_tag(void* md, int ndims, long* dims, int dataType, int tag);
    [LibraryImport(Lib)] private static partial int dnnl_memory_desc_equal(void* a, void* b);
    [LibraryImport(Lib)] private static partial nuint dnnl_memory_desc_get_size(void* md);
    [LibraryImport(Lib)] private static partial int dnnl_memory_create(out IntPtr memory, void* md, IntPtr engine, void* handle);
    [LibraryImport(Lib)] private static partial int dnnl_memory_destroy(IntPtr memory);
    [LibraryImport(Lib)] private static partial int dnnl_dilated_convolution_forward_desc_init(void* desc, int prop, int alg, void* src, void* weights, void* bias, void* dst,
        long* strides, long* dilates, long* padL, long* padR);
    [LibraryImport(Lib)] private static partial int dnnl_dilated_convolution_backward_data_desc_init(void* desc, int alg, void* diffSrc, void* weights, void* diffDst,
        long* strides, long* dilates, long* padL, long* padR);
    [LibraryImport(Lib)] private static partial int dnnl_dilated_convolution_backward_weights_desc_init(void* desc, int alg, void* src, void* diffWeights, void* diffBias,
        void* diffDst, long* strides, long* dilates, long* padL, long* padR);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_attr_create(out IntPtr attr);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_attr_set_scratchpad_mode(IntPtr attr, int mode);
    [LibraryImport(Lib)] private static partial int dnnl_post_ops_create(out IntPtr postOps);
    [LibraryImport(Lib)] private static partial int dnnl_post_ops_append_sum(IntPtr postOps, float scale);
    [LibraryImport(Lib)] private static partial int dnnl_post_ops_append_eltwise(IntPtr postOps, float scale, int alg, float alpha, float beta);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_attr_set_post_ops(IntPtr attr, IntPtr postOps);
    [LibraryImport(Lib)] private static partial int dnnl_post_ops_destroy(IntPtr postOps);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_desc_create(out IntPtr pd, void* opDesc, IntPtr attr, IntPtr engine, IntPtr hint);
    [LibraryImport(Lib)] private static partial int dnnl_reorder_primitive_desc_create(out IntPtr pd, void* src, IntPtr srcEngine, void* dst, IntPtr dstEngine, IntPtr attr);
    [LibraryImport(Lib)] private static partial void* dnnl_primitive_desc_query_md(IntPtr pd, int what, int index);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_desc_query(IntPtr pd, int what, int index, void* result);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_create(out IntPtr primitive, IntPtr pd);
    [LibraryImport(Lib)] private static partial int dnnl_primitive_execute(IntPtr primitive, IntPtr stream, int nargs, ExecArg* args);

    /// <summary>One operand of a cached primitive: its argument id, the plain (NCHW / OIHW) layout of the tensor, the layout
    /// the kernel wants, and the reorder between them (zero when they are the same).</summary>
    internal sealed class Operand
    {
        public required int Arg;
        public required bool Output;
        public required IntPtr UserMd, KernelMd, Reorder;
        /// <summary>For the output of a plan that adds into it: the reorder from the plain layout into the kernel's.</summary>
        public IntPtr ReorderIn;
        public required nuint Bytes;
        /// <summary>For a weight gradient in blocks of output and input channels: this framework's way back to the plain
        /// layout, used instead of <see cref="Reorder"/>.</summary>
        public Unblocking? Unblock;
    }

    /// <summary>A weight gradient of [O, I, kh, kw] that a kernel writes in blocks of <c>size</c> channels each way,
    /// [O/size][I/size][kh][kw][size][size] with the output channel innermost (oneDNN's ABcd8b8a, ABcd16b16a), brought back to
    /// the plain layout a block at a time: each block is read whole and written as size runs of size x kh x kw. oneDNN's reorder writes it
    /// element by element across the whole tensor: 7.0 ms for ResNet-18's 512x512x3x3 gradient on the 2-core AVX2 machine
    /// (nine times its reorder the other way) against 2.3 here, both into fresh memory; the reorders of a ResNet-18 CIFAR
    /// training step went from 62 to 32 ms.</summary>
    internal sealed class Unblocking(int o, int i, int taps, int size)
    {
        public void Run(float* from, float* to) => Threads.For(o / size, (long)o * i * taps, ob =>
        {
            for (int ib = 0; ib < i / size; ib++)
            {
                float* block = from + (long)(ob * (i / size) + ib) * taps * size * size;
                for (int a = 0; a < size; a++)
                {
                    float* row = to + ((long)(ob * size + a) * i + ib * size) * taps;
                    for (int b = 0; b < size; b++)
                        for (int t = 0; t < taps; t++) row[b * taps + t] = block[(t * size + b) * size + a];
                }
            }
        });

        /// <summary>The unblocking for weights of <paramref name="dims"/> [O, I, kh, kw] in layout <paramref name="kernel"/>,
        /// found by laying out a ramp in it and checking every element against the candidate blockings; null if none fits.</summary>
        public static Unblocking? Of(IntPtr kernel, IntPtr plain, int[] dims)
        {
            if (dims.Length != 4) return null;
            int o = dims[0], i = dims[1], taps = dims[2] * dims[3], n = o * i * taps;
            // The ramp's values stay exact below 2^24.
            if (n >= 1 << 24 || Laid(plain, kernel, n) is not { } laid) return null;
            foreach (int block in (int[])[8, 16])
            {
                if (o % block != 0 || i % block != 0) continue;
                bool fits = true;
                for (int k = 0; k < n && fits; k++)
                {
                    int a = k % block, rest = k / block, b = rest % block, t = rest / block % taps, blk = rest / block / taps;
                    int ob = blk / (i / block), ib = blk % (i / block);
                    fits = laid[k] == ((ob * block + a) * i + ib * block + b) * taps + t;
                }
                if (fits) return new Unblocking(o, i, taps, block);
            }
            return null;
        }
    }

    private sealed class Plan
    {
        public required IntPtr Primitive;
        public required IntPtr ScratchMd;
        public required Operand[] Operands;
        public required nuint Scratch;
        public required string Impl;
    }

    /// <summary>Per-thread native buffers, one slot per operand plus the scratchpad, grown as needed and kept.</summary>
    private sealed class Buffers
    {
        private readonly IntPtr[] ptr = new IntPtr[8];
        private readonly nuint[] size = new nuint[8];
        public IntPtr Stream;

        public void* Get(int slot, nuint bytes)
        {
            if (size[slot] < bytes)
            {
                NativeMemory.AlignedFree((void*)ptr[slot]);
                ptr[slot] = (IntPtr)NativeMemory.AlignedAlloc(bytes, 64);
                size[slot] = bytes;
            }
            return (void*)ptr[slot];
        }
    }

    private static readonly Lazy<IntPtr> engine = new(Load);
    private static readonly ConcurrentDictionary<string, Plan?> plans = new();
    [ThreadStatic] private static Buffers? buffers;

    /// <summary>"oneDNN 2.6.3" when the library loaded, else why not.</summary>
    public static string Status { get; private set; } = "not loaded yet";

    /// <summary>Loads the library if not yet done and returns <see cref="Status"/>.</summary>
    public static string Describe()
    {
        _ = engine.Value;
        return Status;
    }

    private static IntPtr Load()
    {
        if (Environment.GetEnvironmentVariable("AUTOGRAD_DNNL") == "0") { Status = "off (AUTOGRAD_DNNL=0)"; return IntPtr.Zero; }
        if (!NativeLibrary.TryLoad(Lib, typeof(Dnnl).Assembly, null, out _)) { Status = $"{Lib} not found (run scripts/install-native)"; return IntPtr.Zero; }
        var v = dnnl_version();
        if (v->Major != 2) { Status = $"{Lib} is oneDNN {v->Major}.{v->Minor}, expected 2.x"; return IntPtr.Zero; }
        Check(dnnl_engine_create(out var e, CpuEngine, 0), "dnnl_engine_create");
        Status = $"oneDNN {v->Major}.{v->Minor}.{v->Patch}";
        return e;
    }

    /// <summary>Whether float32 convolutions go to oneDNN on this thread: the library loaded and the current backend is native.</summary>
    public static bool Active => Backend.Current is CblasBackend && engine.Value != IntPtr.Zero;

    /// <summary>Computes one pass of a float32 convolution into <paramref name="result"/> (see <see cref="ConvPass"/> for
    /// the operands), adding <paramref name="bias"/> and, when <paramref name="relu"/>, applying max(0, .) as the kernel
    /// writes (forward pass only). False when oneDNN is not active or has no kernel for the geometry; the caller then runs
    /// its own kernels.</summary>
    /// <remarks>When <paramref name="weightVersion"/> is given (a leaf weight, in the forward and adjoint passes), the weight
    /// in the kernel's layout is kept beside the weight's version counter and reordered again only when the version changes:
    /// an optimizer step or any other in-place update bumps it. The counter, not the array, keys the cache, since an array
    /// can be recycled as another tensor's storage (<see cref="StoragePool"/>) and a counter cannot. With
    /// <paramref name="inference"/> (a forward pass whose weights are a parameter's, outside gradient recording) the weights
    /// in the kernel's layout are known to serve the next calls too, so kernels that transform them (Winograd) pay at any
    /// size.</remarks>
    public static bool Convolution(ConvPass pass, ConvGeometry g, float[] a, float[] b, float[]? bias, float[] result, Tensor.VersionCounter? weightVersion = null,
        bool relu = false, bool inference = false)
    {
        if (!Active) return false;
        var plan = PlanFor(pass, g, bias != null, relu, sum: false, kept: inference && weightVersion != null);
        if (plan == null) return false;
        // Inside a SharingOutputGradient scope the output gradient (operand 0 of the adjoint pass, 1 of the weight pass) is
        // reordered once for both: into the shared slot, where the other pass finds it.
        var scope = sharing;
        int shared = scope == null ? -1 : pass == ConvPass.Adjoint ? 0 : pass == ConvPass.Weight ? 1 : -1;
        var sharedArray = shared == 0 ? a : b;
        bool ready = shared >= 0 && scope!.Array == sharedArray && dnnl_memory_desc_equal((void*)scope.Md, (void*)plan.Operands[shared].KernelMd) == 1;
        fixed (float* pa = a, pb = b, pbias = bias, pr = result)
        {
            Span<IntPtr> data = bias == null ? [(IntPtr)pa, (IntPtr)pb, (IntPtr)pr] : [(IntPtr)pa, (IntPtr)pb, (IntPtr)pbias, (IntPtr)pr];
            var weight = pass != ConvPass.Weight && weightVersion != null && plan.Operands[1].Reorder != IntPtr.Zero ? Reordered(plan, b, weightVersion) : null;
            fixed (float* pw = weight) Execute(plan, data, (IntPtr)pw, sharedOperand: shared, sharedReady: ready);
        }
        if (shared >= 0 && !ready && plan.Operands[shared].Reorder != IntPtr.Zero) (scope!.Array, scope.Md) = (sharedArray, plan.Operands[shared].KernelMd);
        return true;
    }

    /// <summary>While disposed of later, the adjoint and weight passes of one convolution's backward on this thread share the
    /// reorder of their output gradient into the kernels' layout (as PyTorch's backward does), when both kernels want the
    /// same layout. The gradient must not change inside the scope.</summary>
    public static IDisposable SharingOutputGradient() => sharing = new SharedReorder(sharing);

    [ThreadStatic] private static SharedReorder? sharing;

    /// <summary>The array whose reorder the shared buffer slot holds, and its layout there.</summary>
    private sealed class SharedReorder(SharedReorder? outer) : IDisposable
    {
        public float[]? Array;
        public IntPtr Md;
        /// <summary>Restores the enclosing scope; a nested one starts empty, so the enclosing scope's array must be reordered
        /// again after it (the slot now holds the nested scope's).</summary>
        public void Dispose()
        {
            if (outer != null) outer.Array = null;
            sharing = outer;
        }
    }

    /// <summary>The buffer slot of the shared output gradient (operands and the scratchpad use the first five).</summary>
    private const int SharedSlot = 7;

    /// <summary>The layout a forward kernel wrote its output in, when the caller asked to keep it (<see cref="Forward"/>): the
    /// output operand of the producing plan, whose reorder brings the values back to NCHW.</summary>
    internal sealed class Layout
    {
        internal required Operand Output;
    }

    /// <summary>The forward pass for chains of inference convolutions (an imported ONNX model's Conv feeding Convs):
    /// <paramref name="x"/> is in NCHW, or in <paramref name="xLayout"/> when given (a previous call's output). The output
    /// is written to <paramref name="y"/> from <paramref name="yOffset"/> on, plus <paramref name="add"/> when given (before
    /// the ReLU; NCHW, or in <paramref name="addLayout"/>, which must be the output's). It stays in the kernel's layout when
    /// <paramref name="keepLayout"/> and that layout takes no more room than NCHW (the layout is returned in
    /// <paramref name="yLayout"/>), else it is written in NCHW: this saves the reorder out of one kernel and into the next.
    /// False, with nothing written, when oneDNN has no kernel for the geometry or wants the input or the addend in another
    /// layout than the one given.</summary>
    public static bool Forward(ConvGeometry g, float[] x, Layout? xLayout, float[] w, float[]? bias, float[]? add, Layout? addLayout, float[] y, int yOffset,
        bool relu, bool keepLayout, Tensor.VersionCounter? weightVersion, out Layout? yLayout)
    {
        yLayout = null;
        if (!Active) return false;
        var plan = PlanFor(ConvPass.Forward, g, bias != null, relu, add != null, kept: weightVersion != null, chain: true);
        if (plan == null) return false;
        var (src, dst) = (plan.Operands[0], plan.Operands[^1]);
        if (xLayout != null && (src.Reorder == IntPtr.Zero || dnnl_memory_desc_equal((void*)xLayout.Output.KernelMd, (void*)src.KernelMd) == 0)) return false;
        if (addLayout != null && (dst.Reorder == IntPtr.Zero || dnnl_memory_desc_equal((void*)addLayout.Output.KernelMd, (void*)dst.KernelMd) == 0)) return false;
        bool whole = yOffset == 0 && y.Length == Shape.Numel(g.OutShape) && dst.Bytes == (nuint)y.Length * sizeof(float);
        bool keep = keepLayout && dst.Reorder != IntPtr.Zero && (whole || ChannelSlice(g, dst, yOffset));
        fixed (float* pa = x, pb = w, pbias = bias, py = y, padd = add)
        {
            var pr = py + yOffset;
            Span<IntPtr> data = bias == null ? [(IntPtr)pa, (IntPtr)pb, (IntPtr)pr] : [(IntPtr)pa, (IntPtr)pb, (IntPtr)pbias, (IntPtr)pr];
            var weight = weightVersion != null && plan.Operands[1].Reorder != IntPtr.Zero ? Reordered(plan, w, weightVersion) : null;
            fixed (float* pw = weight) Execute(plan, data, (IntPtr)pw, srcInKernelLayout: xLayout != null, dstInKernelLayout: keep, (IntPtr)padd, addLayout != null);
        }
        if (keep) yLayout = new Layout { Output = dst };
        return true;
    }

    /// <summary>Channels a concatenation can take in a kernel's layout: whole blocks of this many, from a block boundary.</summary>
    internal const int ConcatBlock = 16;

    /// <summary>Whether an output in <paramref name="dst"/>'s kernel layout, written from element <paramref name="yOffset"/>
    /// of a larger batch-1 NCHW tensor, is a contiguous run of that tensor in the same layout: the output is whole blocks of
    /// <see cref="ConcatBlock"/> channels starting at a block boundary, in a layout made of channel blocks
    /// (<see cref="BlocksByChannel"/>).</summary>
    private static bool ChannelSlice(ConvGeometry g, Operand dst, int yOffset)
    {
        int plane = g.Out[1] * g.Out[2];
        return g.Nd == 2 && g.N == 1 && g.Cout % ConcatBlock == 0 && yOffset % (plane * ConcatBlock) == 0
            && dst.Bytes == (nuint)g.Cout * (nuint)plane * sizeof(float) && BlocksByChannel(dst.KernelMd, [1, g.Cout, g.Out[1], g.Out[2]]) >= 0;
    }

    private static readonly ConcurrentDictionary<IntPtr, int> blockTags = new();
    private static readonly ConcurrentDictionary<int, bool> slicingTags = new();

    /// <summary>Whether two outputs <see cref="ChannelSlice"/> let a kernel write in its layout are in the same one (a
    /// concatenation of them is then in it).</summary>
    internal static bool SameBlocks(Layout a, Layout b) =>
        blockTags.TryGetValue(a.Output.KernelMd, out int ta) && blockTags.TryGetValue(b.Output.KernelMd, out int tb) && ta >= 0 && ta == tb;

    /// <summary>The format tag of <paramref name="md"/> (a 4-d activation layout of <paramref name="dims"/>) when it is made
    /// of channel blocks, so that channels [c, c + k) for c and k multiples of <see cref="ConcatBlock"/> are one contiguous
    /// run (as nChw8c and nChw16c), else -1. Found by trying the tags oneDNN knows and checked on values: the tag's
    /// 48-channel layout must hold its channels 16 to 31 exactly as its 16-channel layout holds 16 channels.</summary>
    private static int BlocksByChannel(IntPtr md, int[] dims) => blockTags.GetOrAdd(md, _ =>
    {
        var probe = NativeMemory.AllocZeroed(MdBytes);
        var d = stackalloc long[4];
        for (int i = 0; i < 4; i++) d[i] = dims[i];
        try
        {
            for (int tag = 2; tag < MaxTag; tag++)
                if (dnnl_memory_desc_init_by_tag(probe, 4, d, F32, tag) == Success && dnnl_memory_desc_equal(probe, (void*)md) == 1)
                    return slicingTags.GetOrAdd(tag, SlicesByChannel) ? tag : -1;
            return -1;
        }
        finally { NativeMemory.Free(probe); }
    });

    /// <summary>Past the last format tag of oneDNN 2.6.</summary>
    private const int MaxTag = 1024;

    private static bool SlicesByChannel(int tag)
    {
        const int plane = 2 * 3;
        return Ramp(tag, [1, 3 * ConcatBlock, 2, 3]) is { } whole && Ramp(tag, [1, ConcatBlock, 2, 3], ConcatBlock * plane) is { } part
            && whole.AsSpan(ConcatBlock * plane, part.Length).SequenceEqual(part);
    }

    /// <summary>The NCHW tensor of <paramref name="dims"/> holding <paramref name="first"/>, <paramref name="first"/> + 1, ...
    /// laid out by format tag <paramref name="tag"/>; null when that layout takes more room than NCHW (padded blocks).</summary>
    private static float[]? Ramp(int tag, int[] dims, int first = 0) => Laid(Plain(dims, TagNchw), Plain(dims, tag), Shape.Numel(dims), first);

    /// <summary>The <paramref name="count"/> values <paramref name="first"/>, <paramref name="first"/> + 1, ... in layout
    /// <paramref name="from"/> laid out in layout <paramref name="to"/>; null when <paramref name="to"/> takes more room.</summary>
    private static float[]? Laid(IntPtr from, IntPtr to, int count, int first = 0)
    {
        if (dnnl_memory_desc_get_size((void*)to) != (nuint)count * sizeof(float)) return null;
        var plain = new float[count];
        for (int i = 0; i < plain.Length; i++) plain[i] = first + i;
        var laid = new float[count];
        Reorder(NewReorder(from, to), from, plain, to, laid);
        return laid;
    }

    private static readonly ConcurrentDictionary<(int Tag, int N, int C, int H, int W), Layout> blockedLayouts = new();

    /// <summary>The layout of channel blocks <paramref name="like"/> (that of a tensor of <paramref name="likeDims"/>) is in,
    /// for a tensor of <paramref name="dims"/> (4-d): a channel concatenation of terms convolutions wrote in it
    /// (<see cref="ChannelSlice"/>), or a pooling of one.</summary>
    internal static Layout BlockedLike(Layout like, int[] likeDims, int[] dims)
    {
        int tag = BlocksByChannel(like.Output.KernelMd, likeDims);
        if (tag < 0) throw new ArgumentException($"oneDNN: the layout of a {string.Join('x', likeDims)} tensor is not one of channel blocks");
        return blockedLayouts.GetOrAdd((tag, dims[0], dims[1], dims[2], dims[3]), _ =>
        {
            IntPtr plain = Plain(dims, TagNchw), blocked = Plain(dims, tag);
            return new Layout
            {
                Output = new Operand
                {
                    Arg = ArgDst, Output = true, UserMd = plain, KernelMd = blocked, Reorder = NewReorder(blocked, plain),
                    Bytes = dnnl_memory_desc_get_size((void*)blocked),
                },
            };
        });
    }

    private static readonly ConcurrentDictionary<int, int> blockSizes = new();

    /// <summary>How many channels make a block of <paramref name="layout"/> (that of a 4-d tensor of <paramref name="dims"/>),
    /// or 0 when it is not a layout of channel blocks: found by laying out a 16 x 1 x 2 tensor in it, where the second
    /// column's first channel comes after one block.</summary>
    internal static int ChannelBlock(Layout layout, int[] dims)
    {
        int tag = BlocksByChannel(layout.Output.KernelMd, dims);
        // Plain element 1 is channel 0 of the second column. A tag that reaches here slices by channel: no padding.
        return tag < 0 ? 0 : blockSizes.GetOrAdd(tag, t => Array.IndexOf(Ramp(t, [1, ConcatBlock, 1, 2])!, 1f));
    }

    /// <summary>Brings values a forward kernel left in <paramref name="layout"/> back to NCHW.</summary>
    public static void ToPlain(Layout layout, float[] blocked, float[] plain) =>
        Reorder(layout.Output.Reorder, layout.Output.KernelMd, blocked, layout.Output.UserMd, plain);

    /// <summary>Runs <paramref name="reorder"/> from array <paramref name="from"/> (laid out as <paramref name="fromMd"/>) to
    /// array <paramref name="to"/> (as <paramref name="toMd"/>), on this thread's stream.</summary>
    private static void Reorder(IntPtr reorder, IntPtr fromMd, float[] from, IntPtr toMd, float[] to)
    {
        var buf = buffers ??= new Buffers();
        fixed (float* pf = from, pt = to)
        {
            IntPtr src = NewMemory(fromMd, pf), dst = NewMemory(toMd, pt);
            try { Reorder(reorder, Stream(buf), src, dst); }
            finally { dnnl_memory_destroy(src); dnnl_memory_destroy(dst); }
        }
    }

    /// <summary>The weights of a plan in its kernel's layout, cached per weight storage (its version counter) and layout,
    /// refreshed when the version changes.</summary>
    private static float[] Reordered(Plan p, float[] w, Tensor.VersionCounter counter)
    {
        var o = p.Operands[1];
        int version = counter.Value;
        var entries = weightCache.GetOrCreateValue(counter);
        lock (entries)
        {
            var e = entries.Find(e => dnnl_memory_desc_equal((void*)e.Md, (void*)o.KernelMd) != 0);
            if (e == null) entries.Add(e = new CachedWeight { Md = o.KernelMd, Kernel = p.Impl, Data = GC.AllocateUninitializedArray<float>((int)(o.Bytes / sizeof(float)), pinned: true) });
            if (e.Version != version)
            {
                Reorder(o.Reorder, o.UserMd, w, o.KernelMd, e.Data);
                e.Version = version;
            }
            return e.Data;
        }
    }

    private sealed class CachedWeight
    {
        public required IntPtr Md;
        /// <summary>The kernel of the plan that first asked for this layout.</summary>
        public required string Kernel;
        public required float[] Data;
        public int Version = -1;
    }

    private static readonly ConditionalWeakTable<Tensor.VersionCounter, List<CachedWeight>> weightCache = new();

    /// <summary>The kernels whose layouts of the weights behind <paramref name="counter"/> are kept (for tests).</summary>
    internal static string[] KeptKernels(Tensor.VersionCounter counter)
    {
        if (!weightCache.TryGetValue(counter, out var entries)) return [];
        lock (entries) return entries.Select(e => e.Kernel).ToArray();
    }

    private static IntPtr Stream(Buffers buf)
    {
        if (buf.Stream == IntPtr.Zero) { Check(dnnl_stream_create(out var s, engine.Value, StreamDefault), "dnnl_stream_create"); buf.Stream = s; }
        return buf.Stream;
    }

    /// <summary>Whether the weight gradient of <paramref name="g"/> comes back from oneDNN's layout by <see cref="Unblocking"/>.</summary>
    internal static bool UnblocksWeightGradient(ConvGeometry g) => engine.Value != IntPtr.Zero && PlanFor(ConvPass.Weight, g, false, false, false)?.Operands[^1].Unblock != null;

    /// <summary>The implementation oneDNN chose for a pass (e.g. <c>jit:avx512_core</c>), or null if it has none; with
    /// <paramref name="kept"/>, for an inference forward pass whose weights in the kernel's layout are kept from call to call.</summary>
    public static string? Implementation(ConvPass pass, ConvGeometry g, bool bias = false, bool kept = false) =>
        engine.Value == IntPtr.Zero ? null : PlanFor(pass, g, bias, relu: false, sum: false, kept)?.Impl;

    /// <summary>The cached plan of a pass for a geometry (created on first use), or null when oneDNN has no usable kernel;
    /// <paramref name="kept"/> says that the weights in the kernel's layout are kept from call to call (an inference forward
    /// pass with <see cref="Reordered"/> weights); <paramref name="chain"/>, that it is one of a chain of convolutions passing
    /// activations on in the kernels' layouts (<see cref="Forward"/>).</summary>
    private static Plan? PlanFor(ConvPass pass, ConvGeometry g, bool bias, bool relu, bool sum, bool kept = false, bool chain = false)
    {
        kept &= pass == ConvPass.Forward;
        chain &= pass == ConvPass.Forward;
        return plans.GetOrAdd(Key(pass, g, bias, relu, sum) + (kept ? " kept" : "") + (chain ? " chain" : ""), _ => Best(pass, g, bias, relu, sum, kept, chain));
    }

    private static string Key(ConvPass pass, ConvGeometry g, bool bias, bool relu, bool sum) =>
        $"{pass} {g.Nd} {g.N} {g.Cin} {g.Cout} {g.Groups} {string.Join(',', g.In)} {string.Join(',', g.K)} {string.Join(',', g.Stride)} " +
        $"{string.Join(',', g.PadLo)} {string.Join(',', g.PadHi)} {string.Join(',', g.Dilation)} {string.Join(',', g.Out)} {bias} {relu} {sum} {Backend.ConvWinograd}";

    /// <summary>Runs a plan on the operands' plain-layout data; <paramref name="weight"/>, when not zero, is operand 1 already in
    /// the kernel's layout; the input (operand 0) and the output (the last) are in the kernel's layout when the flags say so;
    /// <paramref name="add"/>, when not zero, is the addend of a plan whose kernel adds into its output, NCHW or (when
    /// <paramref name="addInKernelLayout"/>) in the output's layout.</summary>
    private static void Execute(Plan p, ReadOnlySpan<IntPtr> data, IntPtr weight, bool srcInKernelLayout = false, bool dstInKernelLayout = false,
        IntPtr add = default, bool addInKernelLayout = false, int sharedOperand = -1, bool sharedReady = false)
    {
        var buf = buffers ??= new Buffers();
        var stream = Stream(buf);
        int n = p.Operands.Length, made = 0;
        var args = stackalloc ExecArg[n + 1];
        var user = stackalloc IntPtr[n];
        void* outputInKernelLayout = null;
        var mems = stackalloc IntPtr[2 * n + 1];
        try
        {
            for (int i = 0; i < n; i++)
            {
                var o = p.Operands[i];
                mems[made++] = user[i] = NewMemory(o.UserMd, (void*)data[i]);
                args[i] = new ExecArg { Arg = o.Arg, Memory = user[i] };
                if (o.Reorder == IntPtr.Zero) continue;
                bool cached = i == 1 && weight != IntPtr.Zero, given = (i == 0 && srcInKernelLayout) || (o.Output && dstInKernelLayout);
                bool shared = i == sharedOperand && !cached;
                void* handle = cached ? (void*)weight : given ? (void*)data[i] : buf.Get(shared ? SharedSlot : i, o.Bytes);
                if (o.Output) outputInKernelLayout = handle;
                var inKernelLayout = mems[made++] = NewMemory(o.KernelMd, handle);
                args[i].Memory = inKernelLayout;
                if (!o.Output && !cached && !given && !(shared && sharedReady)) Reorder(o.Reorder, stream, user[i], inKernelLayout);
            }
            if (add != IntPtr.Zero)
            {
                // The kernel adds its result into what the output holds: the addend, in the output's layout.
                var o = p.Operands[n - 1];
                void* into = o.Reorder == IntPtr.Zero || dstInKernelLayout ? (void*)data[n - 1] : buf.Get(n - 1, o.Bytes);
                if (o.ReorderIn == IntPtr.Zero || addInKernelLayout) Buffer.MemoryCopy((void*)add, into, o.Bytes, o.Bytes);
                else Reorder(o.ReorderIn, stream, mems[made++] = NewMemory(o.UserMd, (void*)add), args[n - 1].Memory);
            }
            var scratch = mems[made++] = NewMemory(p.ScratchMd, buf.Get(n, Math.Max(p.Scratch, 64)));
            args[n] = new ExecArg { Arg = ArgScratchpad, Memory = scratch };
            Check(dnnl_primitive_execute(p.Primitive, stream, n + 1, args), "dnnl_primitive_execute");
            var output = p.Operands[^1];
            if (output.Reorder != IntPtr.Zero && !dstInKernelLayout)
            {
                if (output.Unblock != null) output.Unblock.Run((float*)outputInKernelLayout, (float*)data[n - 1]);
                else Reorder(output.Reorder, stream, args[n - 1].Memory, user[n - 1]);
            }
        }
        finally
        {
            for (int i = 0; i < made; i++) dnnl_memory_destroy(mems[i]);
        }
    }

    private static void Reorder(IntPtr reorder, IntPtr stream, IntPtr from, IntPtr to)
    {
        var args = stackalloc ExecArg[2];
        args[0] = new ExecArg { Arg = ArgFrom, Memory = from };
        args[1] = new ExecArg { Arg = ArgTo, Memory = to };
        Check(dnnl_primitive_execute(reorder, stream, 2, args), "dnnl_primitive_execute (reorder)");
    }

    /// <summary>A reorder primitive from layout <paramref name="from"/> to layout <paramref name="to"/> (kept for the life of
    /// the process, as the plans are).</summary>
    private static IntPtr NewReorder(IntPtr from, IntPtr to)
    {
        Check(dnnl_reorder_primitive_desc_create(out var rpd, (void*)from, engine.Value, (void*)to, engine.Value, IntPtr.Zero), "dnnl_reorder_primitive_desc_create");
        Check(dnnl_primitive_create(out var reorder, rpd), "dnnl_primitive_create (reorder)");
        return reorder;
    }

    private static IntPtr NewMemory(void* md, void* handle)
    {
        Check(dnnl_memory_create(out var m, md, engine.Value, handle), "dnnl_memory_create");
        return m;
    }

    private static IntPtr NewMemory(IntPtr md, void* handle) => NewMemory((void*)md, handle);

    private static void Check(int status, string function)
    {
        if (status != Success) throw new InvalidOperationException($"oneDNN: {function} failed with status {status}");
    }

    /// <summary>A plain-layout memory descriptor (allocated for the life of the process, as the plans are).</summary>
    private static IntPtr Plain(int[] dims, int tag)
    {
        var md = NativeMemory.AllocZeroed(MdBytes);
        var d = stackalloc long[12];
        for (int i = 0; i < dims.Length; i++) d[i] = dims[i];
        Check(dnnl_memory_desc_init_by_tag(md, dims.Length, d, F32, tag), "dnnl_memory_desc_init_by_tag");
        return (IntPtr)md;
    }

    /// <summary>The plan for a pass: Winograd for 3x3 stride-1 convs with enough outputs or whose transformed weights are
    /// <paramref name="kept"/> (see <see cref="Backend.ConvWinograd"/>): ResNet-50 imported, batch 1, its 3x3 stride-1 layers
    /// 56x56x64 2.13 against 1.14 ms for three, 28x28x128 2.17 against 1.35, 14x14x256 3.98 against 2.58 for five, 7x7x512
    /// 2.06 against 1.34 for two; the whole model 31.4 against 27.6 ms;
    /// activations in 16-channel blocks where the channels allow, else in the layouts oneDNN prefers; none when oneDNN only has its reference loops for the geometry (hundreds of times slower than ours, e.g. the
    /// weight gradient of LeNet-5's second convolution).</summary>
    private static Plan? Best(ConvPass pass, ConvGeometry g, bool bias, bool relu, bool sum, bool kept, bool chain)
    {
        var plan = Backend.ConvWinograd && (kept || (long)g.N * g.OutVol >= WinogradMinOutputs) ? Create(pass, g, bias, relu, sum, blocked: true, AlgWinograd) : null;
        // A strided forward pass from and to NCHW runs faster on the brgconv kernel, whose channels-last layout oneDNN picks
        // when left to choose: (16,128,28x28) -> 256 3x3 stride 2 6.3-6.9 against 9.3-10.1 ms, (8,256,14x14) -> 512 2.8-2.9
        // against 3.7-3.9, (32,64,32x32) -> 128 4.9 against 5.1-5.7, batch 1 (128,56x56) -> 256 1.4 against 1.7 (stride-1
        // layers about equal). Not in a chain, whose neighbours pass on blocked activations: ResNet-50 imported took 36-39
        // against 28 ms with it.
        // (brgconv needs AVX-512 in oneDNN 2.x: elsewhere the plan is not even tried, as a rejected plan stays allocated.)
        if (plan == null && !chain && pass == ConvPass.Forward && g.Stride.Any(s => s > 1) && System.Runtime.Intrinsics.X86.Avx512F.IsSupported && Create(pass, g, bias, relu, sum, blocked: false, AlgDirect) is { } any
            && any.Impl.StartsWith("brg")) plan = any;
        if (plan == null) plan = Create(pass, g, bias, relu, sum, blocked: true, AlgDirect);
        if (plan == null || plan.Impl.StartsWith("ref")) plan = Create(pass, g, bias, relu, sum, blocked: false, AlgDirect);
        return plan == null || plan.Impl.StartsWith("ref") ? null : plan;
    }

    private static Plan? Create(ConvPass pass, ConvGeometry g, bool bias, bool relu, bool sum, bool blocked, int alg)
    {
        int nd = g.Nd;
        int[] sp(int[] v) => v[(3 - nd)..];
        var spatialOut = sp(g.Out);
        // padding_r as oneDNN checks it: (in + padL + padR - span) / stride + 1 == out. A transposed conv with output_padding
        // computes only the first outputs of a larger conv; its right padding is what those outputs reach.
        var padR = new long[nd];
        for (int i = 0; i < nd; i++)
        {
            int j = 3 - nd + i, span = g.Dilation[j] * (g.K[j] - 1) + 1;
            padR[i] = (g.In[j] + g.PadLo[j] + g.PadHi[j] - span) / g.Stride[j] + 1 == g.Out[j] ? g.PadHi[j] : (long)(g.Out[j] - 1) * g.Stride[j] + span - g.In[j] - g.PadLo[j];
            if (padR[i] < 0) return null;
        }
        int actTag = nd switch { 1 => 4, 2 => 5, _ => 7 };                              // ncw, nchw, ncdhw
        int wTag = g.Groups == 1 ? nd switch { 1 => 4, 2 => 5, _ => 7 } : nd switch { 1 => 5, 2 => 7, _ => 8 }; // (g)oi(d)(h)w
        int[] xDims = [g.N, g.Cin, .. sp(g.In)], yDims = [g.N, g.Cout, .. spatialOut];
        int[] wDims = g.Groups == 1 ? [g.Cout, g.Cg, .. sp(g.K)] : [g.Groups, g.CoutG, g.Cg, .. sp(g.K)];
        IntPtr x = Plain(xDims, actTag), y = Plain(yDims, actTag), w = Plain(wDims, wTag), bmd = bias ? Plain([g.Cout], 2) : IntPtr.Zero;
        // Activations with whole blocks of 16 channels go to nC(d)(h)w16c, whose reorders from and to NCHW move 64-byte runs
        // (measured faster overall than the channels-last layout oneDNN's brgconv kernels pick); others are left to oneDNN.
        int Act(int c) => blocked && c % 16 == 0 ? nd switch { 1 => TagABc16b, 2 => TagABcd16b, _ => TagABcde16b } : TagAny;
        IntPtr xAny = Plain(xDims, Act(g.Cin)), yAny = Plain(yDims, Act(g.Cout)), wAny = Plain(wDims, TagAny);
        var desc = NativeMemory.AllocZeroed(OpDescBytes);
        try
        {
            long* strides = stackalloc long[nd], dil = stackalloc long[nd], pl = stackalloc long[nd], pr = stackalloc long[nd];
            for (int i = 0; i < nd; i++)
            {
                int j = 3 - nd + i;
                strides[i] = g.Stride[j]; dil[i] = g.Dilation[j] - 1; pl[i] = g.PadLo[j]; pr[i] = padR[i];
            }
            Check(dnnl_primitive_attr_create(out var attr), "dnnl_primitive_attr_create");
            Check(dnnl_primitive_attr_set_scratchpad_mode(attr, ScratchpadUser), "dnnl_primitive_attr_set_scratchpad_mode");
            if (relu || sum)
            {
                Check(dnnl_post_ops_create(out var postOps), "dnnl_post_ops_create");
                try
                {
                    if (sum) Check(dnnl_post_ops_append_sum(postOps, 1f), "dnnl_post_ops_append_sum");
                    if (relu) Check(dnnl_post_ops_append_eltwise(postOps, 1f, EltwiseRelu, 0f, 0f), "dnnl_post_ops_append_eltwise");
                    Check(dnnl_primitive_attr_set_post_ops(attr, postOps), "dnnl_primitive_attr_set_post_ops");
                }
                finally { dnnl_post_ops_destroy(postOps); }
            }
            IntPtr hint = IntPtr.Zero;
            if (pass != ConvPass.Forward)
            {
                if (dnnl_dilated_convolution_forward_desc_init(desc, ForwardTraining, alg, (void*)xAny, (void*)wAny, null, (void*)yAny, strides, dil, pl, pr) != Success
                    || dnnl_primitive_desc_create(out hint, desc, attr, engine.Value, IntPtr.Zero) != Success) return null;
                NativeMemory.Clear(desc, OpDescBytes);
            }
            int status = pass switch
            {
                ConvPass.Forward => dnnl_dilated_convolution_forward_desc_init(desc, ForwardInference, alg, (void*)xAny, (void*)wAny, (void*)bmd, (void*)yAny, strides, dil, pl, pr),
                ConvPass.Adjoint => dnnl_dilated_convolution_backward_data_desc_init(desc, alg, (void*)xAny, (void*)wAny, (void*)yAny, strides, dil, pl, pr),
                _ => dnnl_dilated_convolution_backward_weights_desc_init(desc, alg, (void*)xAny, (void*)wAny, null, (void*)yAny, strides, dil, pl, pr),
            };
            if (status != Success || dnnl_primitive_desc_create(out var pd, desc, attr, engine.Value, hint) != Success) return null;
            // Operands in the order of the pass's (a, b, [bias], result).
            (int Arg, int Query, IntPtr User)[] ops = pass switch
            {
                ConvPass.Forward => bias ? [(ArgSrc, QuerySrc, x), (ArgWeights, QueryWeights, w), (ArgBias, -1, bmd), (ArgDst, QueryDst, y)]
                                         : [(ArgSrc, QuerySrc, x), (ArgWeights, QueryWeights, w), (ArgDst, QueryDst, y)],
                ConvPass.Adjoint => [(ArgDiffDst, QueryDiffDst, y), (ArgWeights, QueryWeights, w), (ArgDiffSrc, QueryDiffSrc, x)],
                _ => [(ArgSrc, QuerySrc, x), (ArgDiffDst, QueryDiffDst, y), (ArgDiffWeights, QueryDiffWeights, w)],
            };
            var operands = new Operand[ops.Length];
            for (int i = 0; i < ops.Length; i++)
            {
                bool output = i == ops.Length - 1;
                var kernel = ops[i].Query < 0 ? ops[i].User : (IntPtr)dnnl_primitive_desc_query_md(pd, ops[i].Query, 0);
                var reorder = IntPtr.Zero;
                if (dnnl_memory_desc_equal((void*)kernel, (void*)ops[i].User) == 0)
                    reorder = output ? NewReorder(kernel, ops[i].User) : NewReorder(ops[i].User, kernel);
                var reorderIn = output && sum && reorder != IntPtr.Zero ? NewReorder(ops[i].User, kernel) : IntPtr.Zero;
                operands[i] = new Operand
                {
                    Arg = ops[i].Arg, Output = output, UserMd = ops[i].User, KernelMd = kernel, Reorder = reorder, ReorderIn = reorderIn,
                    Bytes = dnnl_memory_desc_get_size((void*)kernel),
                    Unblock = output && pass == ConvPass.Weight && reorder != IntPtr.Zero && g.Groups == 1 ? Unblocking.Of(kernel, ops[i].User, wDims) : null,
                };
            }
            Check(dnnl_primitive_create(out var prim, pd), "dnnl_primitive_create");
            byte* impl = null;
            dnnl_primitive_desc_query(pd, QueryImplInfo, 0, &impl);
            var scratchMd = dnnl_primitive_desc_query_md(pd, QueryScratchpad, 0);
            return new Plan
            {
                Primitive = prim, Operands = operands, Impl = Marshal.PtrToStringUTF8((IntPtr)impl) ?? "?",
                ScratchMd = (IntPtr)scratchMd, Scratch = dnnl_memory_desc_get_size(scratchMd),
            };
        }
        finally
        {
            NativeMemory.Free(desc);
        }
    }
}
