using System.Collections;
using System.Text;
using Autograd.Checkpoints;

namespace Tests;

public class SafeTensorsTests
{
    private string dir = "";

    [SetUp]
    public void SetUp()
    {
        dir = Path.Combine(Path.GetTempPath(), "safetensors-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
    }

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    private string P(string name = "model.safetensors") => Path.Combine(dir, name);

    // ---------------------------------------------------------------- helpers building files by hand

    /// <summary>Little-endian u64, written out byte by byte (independent of the code under test).</summary>
    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        for (int i = 0; i < 8; i++) b[i] = (byte)(v >> (8 * i));
        return b;
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", ""));

    /// <summary>A file made of the given header JSON (not padded unless the JSON is) and data bytes.</summary>
    private static byte[] File(string json, byte[] data, ulong? declaredLength = null)
    {
        var header = Encoding.UTF8.GetBytes(json);
        return Concat(U64(declaredLength ?? (ulong)header.Length), header, data);
    }

    private CheckpointException Corrupt(byte[] bytes)
    {
        var path = P("corrupt.safetensors");
        System.IO.File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Load(path))!;
        Assert.That(e.Message, Does.Contain(path), "the message names the file");
        Assert.That(e.FilePath, Is.EqualTo(path));
        return e;
    }

    private CheckpointException Corrupt(string json, byte[] data) => Corrupt(File(json, data));

    private static int[] Bits(float[] a) => Array.ConvertAll(a, BitConverter.SingleToInt32Bits);

    private static long[] Bits(double[] a) => Array.ConvertAll(a, BitConverter.DoubleToInt64Bits);

    // ---------------------------------------------------------------- round trips

    [Test]
    public void Round_trip_keeps_values_bit_exactly_with_shapes_and_dtypes()
    {
        var f32 = new[] { 1.5f, -0f, float.NaN, float.PositiveInfinity, float.Epsilon, float.MaxValue };
        var f64 = new[] { Math.PI, -0.0, double.NegativeInfinity, double.Epsilon, 1e308, BitConverter.Int64BitsToDouble(0x7FF8_0000_0000_1234) };
        var i64 = new[] { long.MinValue, -1, 0, long.MaxValue };
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = Tensor.From(f32, 2, 3),
            ["f64"] = Tensor.From(f64, 3, 1, 2),
            ["i64"] = Tensor.From(i64, 2, 2),
            ["scalar.f32"] = Tensor.From(new[] { 2.25f }),
            ["scalar.f64"] = Tensor.From(new[] { -7.125 }),
            ["scalar.i64"] = Tensor.From(new[] { 42L }),
            ["empty.f32"] = Tensor.From(Array.Empty<float>(), 0),
            ["empty.f64"] = Tensor.From(Array.Empty<double>(), 2, 0, 3),
            ["empty.i64"] = Tensor.From(Array.Empty<long>(), 0, 5),
        };
        Assert.That(tensors["scalar.f32"].Shape, Is.Empty, "precondition: From with no shape and one value is 0-dimensional");

        SafeTensors.Save(P(), tensors);
        var loaded = SafeTensors.Load(P());

        Assert.That(loaded.Keys, Is.EquivalentTo(tensors.Keys));
        foreach (var (name, t) in tensors)
        {
            Assert.That(loaded[name].DType, Is.EqualTo(t.DType), name);
            Assert.That(loaded[name].Shape, Is.EqualTo(t.Shape), name);
        }
        Assert.That(Bits(loaded["f32"].ToFloatArray()), Is.EqualTo(Bits(f32)));
        Assert.That(Bits(loaded["f64"].ToDoubleArray()), Is.EqualTo(Bits(f64)));
        Assert.That(loaded["i64"].ToLongArray(), Is.EqualTo(i64));
        Assert.That(loaded["scalar.f32"].Item(), Is.EqualTo(2.25));
        Assert.That(loaded["scalar.f64"].Item(), Is.EqualTo(-7.125));
        Assert.That(loaded["scalar.i64"].Item(), Is.EqualTo(42));
        Assert.That(loaded["empty.f64"].Numel, Is.Zero);
    }

    [Test]
    public void Round_trip_of_a_larger_random_tensor()
    {
        var big = Tensor.Randn([300, 257], 3);
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["w"] = big });
        Assert.That(SafeTensors.Load(P())["w"].ToFloatArray(), Is.EqualTo(big.ToFloatArray()));
        Assert.That(new FileInfo(P()).Length % 8, Is.Zero, "header padding keeps everything 8-byte aligned, F32 data is 4*300*257 bytes");
    }

    [Test]
    public void Metadata_round_trips_including_special_characters()
    {
        var meta = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["quote\"back\\slash"] = "line\nbreak\ttab\u0001ctl",
            ["unicode é ✓ 😀"] = "<html> & 'x'",
            [""] = "",
        };
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["x"] = Tensor.From(new[] { 1f }, 1) }, meta);
        var (tensors, loadedMeta) = SafeTensors.LoadWithMetadata(P());
        Assert.That(loadedMeta, Is.EquivalentTo(meta));
        Assert.That(tensors["x"].ToFloatArray(), Is.EqualTo(new[] { 1f }));
    }

    [Test]
    public void Files_without_metadata_load_with_empty_metadata_and_empty_metadata_round_trips()
    {
        SafeTensors.Save(P("a"), new Dictionary<string, Tensor> { ["x"] = Tensor.From(new[] { 1f }, 1) });
        Assert.That(SafeTensors.LoadWithMetadata(P("a")).Metadata, Is.Empty);
        Assert.That(Encoding.UTF8.GetString(System.IO.File.ReadAllBytes(P("a"))), Does.Not.Contain("__metadata__"));

        SafeTensors.Save(P("b"), new Dictionary<string, Tensor>(), new Dictionary<string, string>());
        var (t, m) = SafeTensors.LoadWithMetadata(P("b"));
        Assert.That(t, Is.Empty);
        Assert.That(m, Is.Empty);
    }

    [Test]
    public void Tensor_names_with_json_special_characters_are_escaped_like_serde_json_and_round_trip()
    {
        string name = "a\"b\\c\nd\u0001é/<x>";
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { [name] = Tensor.From(new[] { 3L }, 1) });
        var bytes = System.IO.File.ReadAllBytes(P());
        var header = Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToUInt64(bytes, 0));
        Assert.That(header, Does.StartWith("{\"a\\\"b\\\\c\\nd\\u0001é/<x>\":{"));
        Assert.That(SafeTensors.Load(P())[name].ToLongArray(), Is.EqualTo(new[] { 3L }));
    }

    [Test]
    public void Saving_overwrites_an_existing_checkpoint_and_leaves_no_temporary_files()
    {
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["a"] = Tensor.From(new[] { 1f, 2f }, 2) });
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["b"] = Tensor.From(new[] { 5.0 }, 1) });
        var loaded = SafeTensors.Load(P());
        Assert.That(loaded.Keys, Is.EqualTo(new[] { "b" }));
        Assert.That(Directory.GetFileSystemEntries(dir).Select(Path.GetFileName), Is.EqualTo(new[] { "model.safetensors" }));
    }

    // ---------------------------------------------------------------- exact byte layout

    [Test]
    public void Byte_layout_matches_a_hand_written_file()
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["b"] = Tensor.From(new[] { 1f, -2f }, 2),
            ["a"] = Tensor.From(new[] { 7L }),
            ["c"] = Tensor.From(new[] { 0.5 }, 1),
        };
        SafeTensors.Save(P(), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        // Order: descending dtype alignment (I64, F64, F32), then name; __metadata__ first; compact JSON.
        const string json = "{\"__metadata__\":{\"format\":\"pt\"},"
                          + "\"a\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                          + "\"c\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                          + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}";
        Assert.That(json.Length, Is.EqualTo(193));
        var expected = Concat(
            Hex("C8 00 00 00 00 00 00 00"),                      // 200 = 193 rounded up to a multiple of 8
            Encoding.ASCII.GetBytes(json + "       "),             // seven spaces of padding
            Hex("07 00 00 00 00 00 00 00"),                      // a: 7 as little-endian int64
            Hex("00 00 00 00 00 00 E0 3F"),                      // c: 0.5 as double
            Hex("00 00 80 3F 00 00 00 C0"));                     // b: 1f, -2f
        Assert.That(System.IO.File.ReadAllBytes(P()), Is.EqualTo(expected));
    }

    [Test]
    public void Byte_layout_matches_the_reference_implementation_test_vectors()
    {
        // safetensors (Rust) test_serialization: "attn.0", F32, shape [1, 2, 3], values 0..5; the JSON is exactly 64 bytes.
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["attn.0"] = Tensor.From(new[] { 0f, 1f, 2f, 3f, 4f, 5f }, 1, 2, 3) });
        var expected = Concat(Hex("40 00 00 00 00 00 00 00"),
            Encoding.ASCII.GetBytes("{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}"),
            Hex("00000000 0000803F 00000040 00004040 00008040 0000A040"));
        Assert.That(System.IO.File.ReadAllBytes(P()), Is.EqualTo(expected));

        // test_serialization_forced_alignement: "attn0", shape [1, 1, 2, 3]; 65-byte JSON padded with 7 spaces to 72.
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["attn0"] = Tensor.From(new[] { 0f, 1f, 2f, 3f, 4f, 5f }, 1, 1, 2, 3) });
        expected = Concat(Hex("48 00 00 00 00 00 00 00"),
            Encoding.ASCII.GetBytes("{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       "),
            Hex("00000000 0000803F 00000040 00004040 00008040 0000A040"));
        Assert.That(System.IO.File.ReadAllBytes(P()), Is.EqualTo(expected));

        // test_empty: no tensors -> "{}" padded to 8; with metadata {"framework": "pt"} -> 35 bytes padded to 40.
        SafeTensors.Save(P(), new Dictionary<string, Tensor>());
        Assert.That(System.IO.File.ReadAllBytes(P()), Is.EqualTo(Concat(Hex("08 00 00 00 00 00 00 00"), Encoding.ASCII.GetBytes("{}      "))));
        SafeTensors.Save(P(), new Dictionary<string, Tensor>(), new Dictionary<string, string> { ["framework"] = "pt" });
        Assert.That(System.IO.File.ReadAllBytes(P()),
            Is.EqualTo(Concat(Hex("28 00 00 00 00 00 00 00"), Encoding.ASCII.GetBytes("{\"__metadata__\":{\"framework\":\"pt\"}}     "))));
    }

    [Test]
    public void Key_order_is_by_descending_dtype_alignment_then_utf8_name_and_independent_of_insertion_order()
    {
        var names = new[] { "b", "a", "B", "é", "a.10", "a.9", "\uFF21", "\U0001F600" };
        var forward = new Dictionary<string, Tensor>();
        foreach (var n in names) forward[n] = Tensor.From(new[] { 1f }, 1);
        forward["z.i64"] = Tensor.From(new[] { 1L }, 1);
        forward["y.f64"] = Tensor.From(new[] { 1.0 }, 1);
        var backward = new Dictionary<string, Tensor>();
        foreach (var (k, v) in forward.Reverse()) backward[k] = v;

        SafeTensors.Save(P("f"), forward);
        SafeTensors.Save(P("b"), backward);
        var bytes = System.IO.File.ReadAllBytes(P("f"));
        Assert.That(System.IO.File.ReadAllBytes(P("b")), Is.EqualTo(bytes));

        var header = Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToUInt64(bytes, 0));
        // UTF-8 byte order: ASCII, then é (C3 A9), then U+FF21 (EF BC A1), then U+1F600 (F0 9F 98 80);
        // UTF-16 ordinal order would put the surrogate pair (D83D) before U+FF21.
        var expectedOrder = new[] { "z.i64", "y.f64", "B", "a", "a.10", "a.9", "b", "é", "\uFF21", "\U0001F600" };
        var positions = expectedOrder.Select(n => header.IndexOf("\"" + n + "\":{", StringComparison.Ordinal)).ToArray();
        Assert.That(positions, Is.All.GreaterThan(0));
        Assert.That(positions, Is.Ordered.Ascending);
        Assert.That(SafeTensors.Load(P("f")).Keys, Is.EqualTo(expectedOrder), "Load returns tensors in file order");
    }

    [Test]
    public void Header_is_padded_with_spaces_to_a_multiple_of_eight_for_every_name_length()
    {
        for (int len = 1; len <= 16; len++)
        {
            var name = new string('n', len);
            SafeTensors.Save(P(), new Dictionary<string, Tensor> { [name] = Tensor.From(new[] { 1.0 }, 1) });
            var bytes = System.IO.File.ReadAllBytes(P());
            ulong n = BitConverter.ToUInt64(bytes, 0);
            var json = $"{{\"{name}\":{{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}}}";
            Assert.That(n % 8, Is.Zero, $"name length {len}");
            Assert.That(n - (ulong)json.Length, Is.LessThan(8));
            Assert.That(Encoding.ASCII.GetString(bytes, 8, (int)n), Is.EqualTo(json.PadRight((int)n, ' ')));
            Assert.That(bytes.Length, Is.EqualTo(8 + (int)n + 8));
        }
    }

    // ---------------------------------------------------------------- other dtypes, hand-built files

    [Test]
    public void F16_and_BF16_files_load_as_float32()
    {
        // F16 bit patterns: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), 3.140625, +inf, -0.
        // BF16 bit patterns: 1, -2, 3.140625, 1/3 rounded (0x3EAA), -inf, NaN (0x7FC0).
        const string json = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
                          + "\"bf\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[16,28]}}";
        var data = Concat(
            Hex("003C 00C0 0038 FF7B 0100 4842 007C 0080"),
            Hex("803F 00C0 4940 AA3E 80FF C07F"));
        System.IO.File.WriteAllBytes(P(), File(json, data));

        var t = SafeTensors.Load(P());
        Assert.That(t["h"].DType, Is.EqualTo(DType.Float32));
        Assert.That(t["h"].Shape, Is.EqualTo(new[] { 2, 4 }));
        Assert.That(Bits(t["h"].ToFloatArray()),
            Is.EqualTo(Bits(new[] { 1f, -2f, 0.5f, 65504f, MathF.Pow(2, -24), 3.140625f, float.PositiveInfinity, -0f })));
        Assert.That(t["bf"].DType, Is.EqualTo(DType.Float32));
        var bf = t["bf"].ToFloatArray();
        Assert.That(bf[..5], Is.EqualTo(new[] { 1f, -2f, 3.140625f, 0.33203125f, float.NegativeInfinity }));
        Assert.That(float.IsNaN(bf[5]));
    }

    [Test]
    public void Integer_and_bool_files_load_as_int64()
    {
        const string json = "{\"bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]},"
                          + "\"u8\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
                          + "\"i8\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[5,7]},"
                          + "\"i16\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[7,11]},"
                          + "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[11,13]},"
                          + "\"i32\":{\"dtype\":\"I32\",\"shape\":[2,1],\"data_offsets\":[13,21]},"
                          + "\"u32\":{\"dtype\":\"U32\",\"shape\":[],\"data_offsets\":[21,25]},"
                          + "\"u64\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[25,33]}}";
        var data = Concat(Hex("00 01 01"), Hex("00 FF"), Hex("80 7F"), Hex("00 80 FF 7F"), Hex("FF FF"),
            Hex("FFFFFFFF 05000000"), Hex("FFFFFFFF"), Hex("FFFFFFFFFFFFFF7F"));
        System.IO.File.WriteAllBytes(P(), File(json, data));

        var t = SafeTensors.Load(P());
        Assert.That(t.Values.Select(v => v.DType), Is.All.EqualTo(DType.Int64));
        Assert.That(t["bool"].ToLongArray(), Is.EqualTo(new long[] { 0, 1, 1 }));
        Assert.That(t["u8"].ToLongArray(), Is.EqualTo(new long[] { 0, 255 }));
        Assert.That(t["i8"].ToLongArray(), Is.EqualTo(new long[] { -128, 127 }));
        Assert.That(t["i16"].ToLongArray(), Is.EqualTo(new long[] { short.MinValue, short.MaxValue }));
        Assert.That(t["u16"].ToLongArray(), Is.EqualTo(new long[] { 65535 }));
        Assert.That(t["i32"].ToLongArray(), Is.EqualTo(new long[] { -1, 5 }));
        Assert.That(t["i32"].Shape, Is.EqualTo(new[] { 2, 1 }));
        Assert.That(t["u32"].ToLongArray(), Is.EqualTo(new long[] { uint.MaxValue }));
        Assert.That(t["u32"].Shape, Is.Empty);
        Assert.That(t["u64"].ToLongArray(), Is.EqualTo(new[] { long.MaxValue }));
    }

    [Test]
    public void U64_values_beyond_int64_are_rejected_with_key_and_offset()
    {
        var e = Corrupt("{\"big\":{\"dtype\":\"U64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
            Hex("0100000000000000 0000000000000080"));
        Assert.That(e.Message, Does.Contain("'big'").And.Contain("element 1").And.Contain("9223372036854775808"));
        Assert.That(e.Offset, Is.EqualTo(8 + 57 + 8));
    }

    [Test]
    public void Unpadded_headers_unknown_fields_and_any_key_order_are_accepted()
    {
        // Offsets not in header order, an extra field, whitespace in the JSON, no padding (older writers).
        const string json = "{ \"second\": {\"data_offsets\": [4, 12], \"shape\": [1], \"dtype\": \"F64\", \"extra\": {\"x\": [1, 2]}},\n"
                          + "  \"first\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]} }";
        System.IO.File.WriteAllBytes(P(), File(json, Concat(Hex("0000C03F"), Hex("000000000000F83F"))));
        var t = SafeTensors.Load(P());
        Assert.That(t.Keys, Is.EqualTo(new[] { "first", "second" }));
        Assert.That(t["first"].ToFloatArray(), Is.EqualTo(new[] { 1.5f }));
        Assert.That(t["second"].ToDoubleArray(), Is.EqualTo(new[] { 1.5 }));
    }

    // ---------------------------------------------------------------- corrupt files

    [Test]
    public void File_shorter_than_eight_bytes()
    {
        foreach (int n in new[] { 0, 1, 7 })
        {
            var e = Corrupt(new byte[n]);
            Assert.That(e.Message, Does.Contain($"{n} bytes").And.Contain("shorter than the 8-byte header length"));
        }
    }

    [Test]
    public void Header_length_larger_than_the_file()
    {
        var e = Corrupt(File("{}", [], declaredLength: 1000));
        Assert.That(e.Message, Does.Contain("header length").And.Contain("1000").And.Contain("2 bytes that follow").And.Contain("file length 10"));
        Assert.That(e.Offset, Is.EqualTo(0));

        e = Corrupt(File("{}", [], declaredLength: ulong.MaxValue));
        Assert.That(e.Message, Does.Contain(ulong.MaxValue.ToString()));
    }

    [Test]
    public void Header_larger_than_the_reference_limit()
    {
        var path = P("corrupt.safetensors");
        using (var fs = new FileStream(path, FileMode.Create))
        {
            fs.Write(U64(150_000_000));
            fs.SetLength(8 + 150_000_000); // sparse
        }
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Load(path))!;
        Assert.That(e.Message, Does.Contain("150000000").And.Contain("100000000"));
    }

    [Test]
    public void Header_that_is_not_valid_json_reports_the_byte_position()
    {
        const string json = "{\"a\":{\"dtype\":\"F32\",,\"shape\":[1],\"data_offsets\":[0,4]}}";
        int bad = json.IndexOf(",,", StringComparison.Ordinal) + 1;
        var e = Corrupt(json, new byte[4]);
        Assert.That(e.Message, Does.Contain("not valid JSON").And.Contain($"header byte {bad}").And.Contain($"file offset {8 + bad}"));
        Assert.That(e.Offset, Is.EqualTo(8 + bad));
        Assert.That(e.InnerException, Is.InstanceOf<System.Text.Json.JsonException>());

        // On a later line: the position is still counted from the start of the header.
        const string json2 = "{\"a\":{\"dtype\":\"F32\",\n\"shape\":[1] \"data_offsets\":[0,4]}}";
        int bad2 = json2.IndexOf(" \"data", StringComparison.Ordinal) + 1;
        e = Corrupt(json2, new byte[4]);
        Assert.That(e.Message, Does.Contain($"header byte {bad2}").And.Contain("line 2"));

        Assert.That(Corrupt("{\"a\":1", []).Message, Does.Contain("not valid JSON").Or.Contain("ends unexpectedly"));
        Assert.That(Corrupt("{} x", []).Message, Does.Contain("not valid JSON"));
        Assert.That(Corrupt("        ", []).Message, Does.Contain("header is empty"));
        Assert.That(Corrupt("", []).Message, Does.Contain("header is empty"));
        Assert.That(Corrupt("[1,2]", []).Message, Does.Contain("must be a JSON object").And.Contain("an array"));
        Assert.That(Corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},}", new byte[4]).Message, Does.Contain("not valid JSON"));
        Assert.That(Corrupt("{\"a\":{\"dtype\":\"F32\",/*c*/\"shape\":[],\"data_offsets\":[0,4]}}", new byte[4]).Message, Does.Contain("not valid JSON"));
        Assert.That(Corrupt("{\"\\ud800\":{}}", []).Message, Does.Contain("invalid JSON string").Or.Contain("not valid JSON"));
    }

    [Test]
    public void Header_that_is_not_utf8()
    {
        var header = Concat(Encoding.ASCII.GetBytes("{\"a"), Hex("FF"), Encoding.ASCII.GetBytes("\":{}}"));
        var e = Corrupt(Concat(U64((ulong)header.Length), header));
        Assert.That(e.Message, Does.Contain("not valid UTF-8").And.Contain("0xFF").And.Contain("header byte 3"));
        Assert.That(e.Offset, Is.EqualTo(11));
    }

    [TestCase("dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}")]
    [TestCase("shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}")]
    [TestCase("data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}")]
    public void Missing_field(string field, string json)
    {
        var e = Corrupt(json, new byte[4]);
        Assert.That(e.Message, Does.Contain("tensor 'w'").And.Contain($"missing field '{field}'"));
        Assert.That((e.Key, e.Field), Is.EqualTo(("w", field)));
        Assert.That(e.Offset, Is.EqualTo(8 + 5), "points at the tensor's object");
    }

    [Test]
    public void Unknown_and_unsupported_dtypes()
    {
        var e = Corrupt("{\"w\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("tensor 'w', field 'dtype'").And.Contain("unknown dtype \"F17\"").And.Contain("F32, F64, I64"));
        Assert.That(e.Offset, Is.EqualTo(8 + 14));

        e = Corrupt("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", new byte[1]);
        Assert.That(e.Message, Does.Contain("tensor 'w', field 'dtype'").And.Contain("\"F8_E4M3\" is not supported"));

        e = Corrupt("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("field 'dtype'").And.Contain("expected a string").And.Contain("found number 32"));
    }

    [Test]
    public void Offsets_out_of_range()
    {
        var e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("tensor 'w', field 'data_offsets'").And.Contain("expected end <= 8").And.Contain("found 400"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("'data_offsets'").And.Contain("begin 8 is greater than end 4"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("'data_offsets'").And.Contain("non-negative").And.Contain("found number -4"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999999]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("'data_offsets'").And.Contain("found number 99999999999999999999999"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("'data_offsets'").And.Contain("exactly two offsets").And.Contain("found 1"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("'data_offsets'").And.Contain("exactly two offsets"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("'data_offsets'").And.Contain("expected [begin, end]").And.Contain("string \"0-4\""));
    }

    [Test]
    public void Overlapping_offsets_name_both_tensors()
    {
        var e = Corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            new byte[12]);
        Assert.That(e.Message, Does.Contain("tensor 'b', field 'data_offsets'").And.Contain("overlaps tensor 'a' at [0, 8]").And.Contain("expected begin 8"));
        Assert.That(e.Offset, Is.EqualTo(8 + 108 + 4));

        // Same offsets twice.
        e = Corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            new byte[4]);
        Assert.That(e.Message, Does.Contain("overlaps"));
    }

    [Test]
    public void Gaps_and_uncovered_bytes_are_rejected()
    {
        var e = Corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            new byte[12]);
        Assert.That(e.Message, Does.Contain("tensor 'b', field 'data_offsets'").And.Contain("gap of 4 bytes after tensor 'a'").And.Contain("expected begin 4"));

        e = Corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("tensor 'a'").And.Contain("gap of 4 bytes after the start of the data buffer"));

        e = Corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[9]);
        Assert.That(e.Message, Does.Contain("field 'data_offsets'").And.Contain("cover 4 bytes").And.Contain("holds 9 bytes").And.Contain("5 unaccounted"));
        Assert.That(e.Offset, Is.EqualTo(8 + 54 + 4));

        e = Corrupt("{}", new byte[1]);
        Assert.That(e.Message, Does.Contain("cover 0 bytes").And.Contain("holds 1 bytes"));
    }

    [Test]
    public void Shape_inconsistent_with_offsets()
    {
        var e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("tensor 'w', field 'data_offsets'").And.Contain("shape [3] with dtype F32 needs 12 bytes").And.Contain("span 8 bytes"));
        Assert.That(e.Offset, Is.EqualTo(8 + 54));

        e = Corrupt("{\"w\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,0]}}", []);
        Assert.That(e.Message, Does.Contain("needs 8 bytes").And.Contain("span 0 bytes"));
    }

    [Test]
    public void Invalid_dimensions()
    {
        var e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", []);
        Assert.That(e.Message, Does.Contain("tensor 'w', field 'shape'").And.Contain("dimension 1 is negative").And.Contain("found -1"));
        Assert.That(e.Offset, Is.EqualTo(8 + 31));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("field 'shape'").And.Contain("found number 1.5"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("field 'shape'").And.Contain("found string \"2\""));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[0,3000000000],\"data_offsets\":[0,0]}}", []);
        Assert.That(e.Message, Does.Contain("field 'shape'").And.Contain("3000000000"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647,2147483647,2147483647],\"data_offsets\":[0,4]}}", new byte[4]);
        Assert.That(e.Message, Does.Contain("field 'shape'").And.Contain("more than 2147483647 elements"));
    }

    [Test]
    public void Malformed_entries_and_metadata()
    {
        var e = Corrupt("{\"w\":[1]}", []);
        Assert.That(e.Message, Does.Contain("tensor 'w'").And.Contain("expected an object").And.Contain("found an array"));

        e = Corrupt("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]);
        Assert.That(e.Message, Does.Contain("tensor 'w'").And.Contain("appears twice"));

        e = Corrupt("{\"__metadata__\":{\"epoch\":3}}", []);
        Assert.That(e.Message, Does.Contain("__metadata__ entry 'epoch'").And.Contain("expected a string value, found number 3"));
        Assert.That((e.Key, e.Field), Is.EqualTo(("__metadata__", "epoch")));

        e = Corrupt("{\"__metadata__\":[\"x\"]}", []);
        Assert.That(e.Message, Does.Contain("__metadata__").And.Contain("expected an object of string to string"));

        e = Corrupt("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", []);
        Assert.That(e.Message, Does.Contain("__metadata__ entry 'a'").And.Contain("twice"));
    }

    [Test]
    public void Truncation_at_every_length_gives_a_checkpoint_exception()
    {
        SafeTensors.Save(P(), new Dictionary<string, Tensor>
        {
            ["a"] = Tensor.From(new[] { 1f, 2f, 3f }, 3),
            ["b"] = Tensor.From(new[] { 4.0 }, 1),
            ["c"] = Tensor.From(new[] { 5L, 6L }, 2),
            ["e"] = Tensor.From(Array.Empty<float>(), 0),
        }, new Dictionary<string, string> { ["k"] = "v" });
        var bytes = System.IO.File.ReadAllBytes(P());
        int headerEnd = 8 + (int)BitConverter.ToUInt64(bytes, 0);
        for (int len = 0; len < bytes.Length; len++)
        {
            var e = Corrupt(bytes[..len]);
            if (len < 8) Assert.That(e.Message, Does.Contain("shorter than the 8-byte"), $"length {len}");
            else if (len < headerEnd) Assert.That(e.Message, Does.Contain("header length"), $"length {len}");
            else Assert.That(e.Message, Does.Contain("field 'data_offsets'"), $"length {len}");
        }
        // Trailing garbage is rejected too.
        Assert.That(Corrupt(Concat(bytes, [0])).Message, Does.Contain("unaccounted"));
    }

    [Test]
    public void Single_byte_corruptions_of_the_header_never_escape_as_other_exceptions()
    {
        SafeTensors.Save(P("good"), new Dictionary<string, Tensor>
        {
            ["a"] = Tensor.From(new[] { 1f, 2f }, 2),
            ["b"] = Tensor.From(new[] { 3L }, 1),
        }, new Dictionary<string, string> { ["k"] = "v" });
        var good = System.IO.File.ReadAllBytes(P("good"));
        int headerEnd = 8 + (int)BitConverter.ToUInt64(good, 0);
        var replacements = "\0\"{}[],:-019e. \\\u007f"u8.ToArray().Append((byte)0xFF).Append((byte)0xC3).ToArray();
        var path = P("fuzz");
        int loaded = 0, rejected = 0;
        for (int i = 0; i < headerEnd; i++)
        {
            foreach (var r in replacements)
            {
                var bytes = (byte[])good.Clone();
                bytes[i] = r;
                System.IO.File.WriteAllBytes(path, bytes);
                try { SafeTensors.LoadWithMetadata(path); loaded++; }
                catch (CheckpointException) { rejected++; }
            }
        }
        Assert.That(rejected, Is.GreaterThan(0));
        Assert.That(loaded, Is.GreaterThan(0), "e.g. replacing a padding space or changing a metadata letter still loads");
    }

    // ---------------------------------------------------------------- atomic writes

    private sealed class ThrowingDictionary(Dictionary<string, Tensor> inner, int throwAfter, Action? beforeThrow = null)
        : IReadOnlyDictionary<string, Tensor>
    {
        public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator()
        {
            int i = 0;
            foreach (var kv in inner)
            {
                if (i++ == throwAfter)
                {
                    beforeThrow?.Invoke();
                    throw new InvalidOperationException("injected failure");
                }
                yield return kv;
            }
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
        public int Count => inner.Count;
        public bool ContainsKey(string key) => inner.ContainsKey(key);
        public bool TryGetValue(string key, out Tensor value) => inner.TryGetValue(key, out value!);
        public Tensor this[string key] => inner[key];
        public IEnumerable<string> Keys => inner.Keys;
        public IEnumerable<Tensor> Values => inner.Values;
    }

    [Test]
    public void A_failure_while_saving_leaves_the_old_checkpoint_intact_and_no_temporary_file()
    {
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["old"] = Tensor.From(new[] { 1f, 2f }, 2) });
        var before = System.IO.File.ReadAllBytes(P());

        string[] duringSave = [];
        var failing = new ThrowingDictionary(new Dictionary<string, Tensor>
        {
            ["x"] = Tensor.From(new[] { 9f }, 1),
            ["y"] = Tensor.From(new[] { 8f }, 1),
            ["z"] = Tensor.From(new[] { 7f }, 1),
        }, throwAfter: 2, beforeThrow: () => duringSave = Directory.GetFiles(dir).Select(Path.GetFileName).ToArray()!);

        var e = Assert.Throws<InvalidOperationException>(() => SafeTensors.Save(P(), failing));
        Assert.That(e!.Message, Is.EqualTo("injected failure"));
        Assert.That(duringSave, Has.Length.EqualTo(2), "the temporary file existed when the failure happened, so cleanup was exercised");
        Assert.That(duringSave.Single(f => f != "model.safetensors"), Does.StartWith(".model.safetensors.").And.EndWith(".tmp"));

        Assert.That(System.IO.File.ReadAllBytes(P()), Is.EqualTo(before));
        Assert.That(Directory.GetFileSystemEntries(dir).Select(Path.GetFileName), Is.EqualTo(new[] { "model.safetensors" }));
        Assert.That(SafeTensors.Load(P())["old"].ToFloatArray(), Is.EqualTo(new[] { 1f, 2f }));
    }

    [Test]
    public void Invalid_arguments_leave_the_old_checkpoint_intact()
    {
        SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["old"] = Tensor.From(new[] { 1f }, 1) });
        var before = System.IO.File.ReadAllBytes(P());

        var e = Assert.Throws<ArgumentException>(() => SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["__metadata__"] = Tensor.From(new[] { 1f }, 1) }));
        Assert.That(e!.Message, Does.Contain("reserved"));
        e = Assert.Throws<ArgumentException>(() => SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["a"] = Tensor.From(new[] { 1f }, 1), ["n"] = null! }));
        Assert.That(e!.Message, Does.Contain("'n' is null"));
        e = Assert.Throws<ArgumentException>(() => SafeTensors.Save(P(), new Dictionary<string, Tensor> { ["bad\uD800"] = Tensor.From(new[] { 1f }, 1) }));
        Assert.That(e!.Message, Does.Contain("UTF"));
        e = Assert.Throws<ArgumentException>(() => SafeTensors.Save(P(), new Dictionary<string, Tensor>(), new Dictionary<string, string> { ["k"] = null! }));
        Assert.That(e!.Message, Does.Contain("'k' is null"));

        Assert.That(System.IO.File.ReadAllBytes(P()), Is.EqualTo(before));
        Assert.That(Directory.GetFileSystemEntries(dir), Has.Length.EqualTo(1));
    }

    [Test]
    public void A_failing_rename_leaves_no_temporary_file()
    {
        var target = P("is-a-directory");
        Directory.CreateDirectory(target);
        System.IO.File.WriteAllText(Path.Combine(target, "inside"), "keep");
        Assert.That(() => SafeTensors.Save(target, new Dictionary<string, Tensor> { ["x"] = Tensor.From(new[] { 1f }, 1) }),
            Throws.InstanceOf<IOException>().Or.InstanceOf<UnauthorizedAccessException>());
        Assert.That(Directory.GetFileSystemEntries(dir).Select(Path.GetFileName), Is.EqualTo(new[] { "is-a-directory" }));
        Assert.That(System.IO.File.ReadAllText(Path.Combine(target, "inside")), Is.EqualTo("keep"));
    }
}
