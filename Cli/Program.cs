using Autograd.Backends;

namespace Autograd.Cli;

/// <summary>The <c>autograd</c> command.</summary>
public static class Program
{
    private const string Usage = """
        usage: autograd <command> [options]       (autograd <command> --help for its options)

          train       train a model on a dataset (default: LeNet-5 on MNIST to 99%)
          eval        evaluate a checkpoint on a test set
          predict     class probabilities of one PNG image
          summary     layer table of a model: shapes, parameters, FLOPs, receptive field
          gradcheck   gradient-check the registered ops
          demo        fit a small MLP and print the gradient-check table
          backend     show the backend in use and those available
          onnx        verify ONNX test cases, describe an ONNX model, or export a model to ONNX (onnx --help)
        """;

    /// <summary>Runs a command; exit code 0 on success, 1 on failure, 2 on wrong arguments.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        var rest = args[1..];
        try
        {
            return args[0] switch
            {
                "train" => TrainCommand.Train(rest),
                "eval" => TrainCommand.Eval(rest),
                "predict" => TrainCommand.Predict(rest),
                "summary" => ToolCommands.Summary(rest),
                "gradcheck" => ToolCommands.GradCheckTable(rest),
                "demo" => ToolCommands.Demo(rest),
                "backend" => ToolCommands.ShowBackend(rest),
                "onnx" => OnnxCommands.Run(rest),
                _ => throw new UsageException($"unknown command '{args[0]}'"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"autograd: {e.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or Checkpoints.CheckpointException
            or Onnx.OnnxFormatException or Onnx.OnnxUnsupportedException)
        {
            Console.Error.WriteLine($"autograd: {e.Message}");
            return 1;
        }
    }

    /// <summary>Prints a command's help and returns true when --help was given.</summary>
    internal static bool Help(string[] args, string text)
    {
        if (!args.Contains("--help") && !args.Contains("-h")) return false;
        Console.WriteLine(text);
        return true;
    }

    /// <summary>The repository folder (where <c>data/</c> lives), found by walking up from the executable.</summary>
    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Autograd.sln"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }

    internal static void TouchBackend() => _ = Backend.Current;
}
