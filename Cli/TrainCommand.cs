using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Autograd.Checkpoints;
using Autograd.Data;
using Autograd.Distributed;
using Autograd.Layers;
using Autograd.Optimizers;
using Autograd.Training;
using Autograd.Zoo;
using Spectre.Console;

namespace Autograd.Cli;

/// <summary><c>train</c>, <c>eval</c> and <c>predict</c>.</summary>
internal static class TrainCommand
{
    /// <summary>Test-set batches: small enough that LeNet-5's activations (3.8 MB for its first layer) stay in the GC's young
    /// generation. With batches of 1000 (19 MB activations, on the large-object heap, collected in the background) and the
    /// OpenMP threads spinning between parallel regions, the peak working set of `./autograd train` grew from epoch to epoch
    /// (384, 421, 558 MiB; flat at 380 MiB with GOMP_SPINCOUNT=0); with 200, flat at 234 MiB.</summary>
    private const int EvalBatch = 200;

    private const string TrainHelp = """
        usage: autograd train [options]
          --model NAME        lenet5 (default), mlp, or a zoo model (see autograd summary --help)
          --dataset NAME      mnist (default), fashion-mnist, digits, cifar10
          --epochs N          default 8
          --batch-size B      default 64
          --optimizer NAME    sgd | adam (default) | adamw | rmsprop | adagrad
          --lr X              default: 0.05 for sgd (momentum 0.9), 1e-3 otherwise; cosine-annealed over the epochs
          --seed S            default 0 (initialization, shuffling, dropout)
          --checkpoint DIR    per-epoch checkpoints (default: checkpoints)
          --resume FILE       continue from a checkpoint
          --metrics FILE      write per-epoch metrics and timings as JSON
          --plot FILE.png     plot loss and accuracy curves
          --no-progress       no live progress bar (one line per epoch only)
          --distributed       data-parallel training across the ranks of an MPI job: mpirun -np 2 ./autograd train --distributed
                              (--batch-size is per rank; only rank 0 prints and writes checkpoints, metrics and plots)
          --sync-batchnorm    with --distributed: batch-norm statistics over the batches of all ranks (SyncBatchNorm)
          --timeout S         with --distributed: abort the job when a collective waits longer than S seconds (default 300)
        Ctrl-C stops after the current step and saves a checkpoint.
        """;

    private static readonly string[] Datasets = ["mnist", "fashion-mnist", "digits", "cifar10"];

    /// <summary>The train/test splits of a dataset and what a model needs to know about it.</summary>
    private sealed record DataSpec(IDataset Train, IDataset Test, int[] SampleShape, int Classes, ITransform? Transform, IReadOnlyList<string> ClassNames);

    private static DataSpec Load(string name)
    {
        string data = Path.Combine(Program.RepoRoot(), "data");
        switch (name)
        {
            case "mnist":
                return new(Autograd.Data.Datasets.Mnist(Path.Combine(data, "mnist"), true), Autograd.Data.Datasets.Mnist(Path.Combine(data, "mnist"), false),
                    [1, 28, 28], 10, new Normalize([0.1307], [0.3081]), Autograd.Data.Datasets.MnistClasses);
            case "fashion-mnist":
                return new(Autograd.Data.Datasets.FashionMnist(Path.Combine(data, "fashion-mnist"), true), Autograd.Data.Datasets.FashionMnist(Path.Combine(data, "fashion-mnist"), false),
                    [1, 28, 28], 10, new Normalize([0.2860], [0.3530]), Autograd.Data.Datasets.FashionMnistClasses);
            case "digits":
            {
                var all = Autograd.Data.Datasets.Digits(Path.Combine(data, "sklearn-digits", "digits.csv.gz"));
                var split = Autograd.Data.Datasets.RandomSplit(all, [0.8, 0.2], seed: 0);
                return new(split[0], split[1], [1, 8, 8], 10, null, Autograd.Data.Datasets.MnistClasses);
            }
            default:
            {
                var all = Autograd.Data.Datasets.Cifar10(Path.Combine(data, "cifar10-subset"));
                var split = Autograd.Data.Datasets.RandomSplit(all, [0.8, 0.2], seed: 0);
                return new(split[0], split[1], [3, 32, 32], 10, new Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]), all.Classes ?? Autograd.Data.Datasets.MnistClasses);
            }
        }
    }

    internal static Module CreateModel(string name, int[] sampleShape, int classes) => name switch
    {
        "lenet5" when sampleShape is [1, 28, 28] => new LeNet5(classes),
        "lenet5" => throw new UsageException($"train: lenet5 takes 1x28x28 images, this dataset has {string.Join("x", sampleShape)}"),
        "mlp" => new Sequential(new Flatten(), new Linear(sampleShape.Aggregate(1, (a, b) => a * b), 128), new ReLU(), new Linear(128, classes)),
        _ => Autograd.Zoo.Zoo.Names.Contains(name) ? Autograd.Zoo.Zoo.Create(name, classes) : throw new UsageException($"unknown model '{name}' (lenet5, mlp, {string.Join(", ", Autograd.Zoo.Zoo.Names)})"),
    };

    public static int Train(string[] argv)
    {
        if (Program.Help(argv, TrainHelp)) return 0;
        var a = new Args("train", argv, ["--model", "--dataset", "--epochs", "--batch-size", "--optimizer", "--lr", "--seed", "--checkpoint", "--resume", "--metrics", "--plot", "--timeout"],
            ["--no-progress", "--distributed", "--sync-batchnorm"]);
        if (a.Positionals.Count > 0) throw new UsageException($"train: unexpected argument '{a.Positionals[0]}'");
        if (!a.Has("--distributed"))
        {
            foreach (var option in new[] { "--sync-batchnorm", "--timeout" })
                if (a.Has(option) || a.Str(option) != null) throw new UsageException($"train: {option} needs --distributed");
            return Train(a, null);
        }
        if (!Communicator.IsAvailable) throw new UsageException($"train --distributed: {Communicator.UnavailableReason}");
        var comm = Communicator.Init(TimeSpan.FromSeconds(a.Double("--timeout") ?? 300));
        int code;
        var stdout = Console.Out;
        try
        {
            if (!comm.IsMain) Console.SetOut(TextWriter.Null);
            code = Train(a, comm);
        }
        catch (Exception e) when (comm.WorldSize > 1)
        {
            // The other ranks are inside a collective or about to enter one: take the job down now rather than at their timeout.
            comm.Abort($"train failed: {e.Message}");
            throw;
        }
        finally { Console.SetOut(stdout); }
        comm.Dispose();
        return code;
    }

    private static int Train(Args a, Communicator? comm)
    {
        string modelName = a.Str("--model", "lenet5")!, datasetName = a.Choice("--dataset", "mnist", Datasets);
        int epochs = a.Int("--epochs", 8, 1), batchSize = a.Int("--batch-size", 64, 1), seed = a.Int("--seed", 0);
        string optName = a.Choice("--optimizer", "adam", "sgd", "adam", "adamw", "rmsprop", "adagrad");
        double lr = a.Double("--lr") ?? (optName == "sgd" ? 0.05 : 1e-3);
        string checkpointDir = a.Str("--checkpoint", "checkpoints")!;

        Program.TouchBackend();
        var data = Load(datasetName);
        Generator.ManualSeed(seed);
        var model = CreateModel(modelName, data.SampleShape, data.Classes);
        if (comm != null && a.Has("--sync-batchnorm")) SyncBatchNorm.ConvertSyncBatchNorm(model, comm);
        Optimizer optimizer = optName switch
        {
            "sgd" => new SGD(model.Parameters(), lr: lr, momentum: 0.9),
            "adamw" => new AdamW(model.Parameters(), lr: lr),
            "rmsprop" => new RMSprop(model.Parameters(), lr: lr),
            "adagrad" => new Adagrad(model.Parameters(), lr: lr),
            _ => new Adam(model.Parameters(), lr: lr),
        };
        var scheduler = new CosineAnnealingLR(optimizer, tMax: epochs);
        // Distributed: each rank visits its shard of the same per-epoch permutation, and evaluates its shard of the test set.
        var trainLoader = comm == null
            ? new DataLoader(data.Train, batchSize, shuffle: true, seed: seed, transform: data.Transform)
            : new DataLoader(data.Train, batchSize, transform: data.Transform, sampler: new DistributedSampler(data.Train.Count, comm, shuffle: true, seed: seed));
        var testLoader = new DataLoader(data.Test, EvalBatch, transform: data.Transform,
            sampler: comm == null ? null : new DistributedSampler(data.Test.Count, comm, shuffle: false));
        var ddp = comm == null ? null : new DistributedDataParallel(model, comm);

        bool stop = false;
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop = true; };
        Console.CancelKeyPress += onCancel;
        var trainer = new Trainer((Module?)ddp ?? model, optimizer, scheduler)
        {
            CheckpointDir = checkpointDir,
            StopRequested = () => stop,
            Metadata = new Dictionary<string, string> { ["model"] = modelName, ["dataset"] = datasetName },
            ProcessGroup = comm,
            CheckpointModule = model,
        };
        int start = 0;
        if (a.Str("--resume") is string resume)
        {
            start = trainer.Resume(resume);
            Console.WriteLine($"resumed from {resume} at epoch {start + 1}");
        }
        Console.WriteLine($"{modelName} on {datasetName}: {model.ParameterCount:N0} parameters, {data.Train.Count:N0} training / {data.Test.Count:N0} test samples, " +
            $"{optName} lr {lr.ToString(CultureInfo.InvariantCulture)}, batch {batchSize}{(comm == null ? "" : $" x {comm.WorldSize} ranks{(a.Has("--sync-batchnorm") ? " (SyncBatchNorm)" : "")}")}, {epochs} epochs, backend {Backends.Backend.Current.Name}");

        var history = new List<EpochResult>();
        bool main = comm?.IsMain ?? true;
        bool live = main && !a.Has("--no-progress") && AnsiConsole.Profile.Capabilities.Interactive;
        var peak = new List<long>();
        trainer.EpochCompleted += r =>
        {
            history.Add(r);
            using var p = Process.GetCurrentProcess();
            peak.Add(p.PeakWorkingSet64);
            Console.WriteLine($"epoch {r.Epoch + 1,3}/{epochs}  loss {r.TrainLoss:F4}  acc {r.TrainAccuracy:F4}  test loss {r.TestLoss:F4}  test acc {r.TestAccuracy:F4}  " +
                $"lr {r.Lr:G3}  {r.Seconds:F1} s (steps {r.StepSeconds:F1} s)  {trainLoader.Dataset.Count / r.Seconds:F0} samples/s  peak {p.PeakWorkingSet64 / 1048576.0:F0} MiB" +
                (ddp == null ? "" : $"  all-reduce {ddp.AllReduceTime.TotalSeconds:F1} s ({ddp.BytesAllReduced / 1048576.0:F0} MiB), backward waited {ddp.WaitTime.TotalSeconds:F1} s"));
            ddp?.ResetTimers();
        };
        if (live)
        {
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    ProgressTask? task = null;
                    trainer.StepCompleted += s =>
                    {
                        if (task == null || s.Batch == 0) task = ctx.AddTask($"epoch {s.Epoch + 1}", maxValue: s.Batches);
                        task.Value = s.Batch + 1;
                        task.Description = $"epoch {s.Epoch + 1} batch {s.Batch + 1}/{s.Batches} loss {s.Loss:F4} acc {s.Accuracy:F4} {s.SamplesPerSecond:F0}/s";
                    };
                    trainer.Fit(e => { trainLoader.Epoch = e; return trainLoader; }, () => testLoader, epochs, start);
                });
        }
        else trainer.Fit(e => { trainLoader.Epoch = e; return trainLoader; }, () => testLoader, epochs, start);
        Console.CancelKeyPress -= onCancel;

        if (trainer.Interrupted) Console.WriteLine($"interrupted: checkpoint saved to {Path.Combine(checkpointDir, "last.safetensors")}");
        var (_, testAcc, _) = trainer.Evaluate(testLoader);
        if (main && a.Str("--metrics") is string metrics)
            File.WriteAllText(metrics, JsonSerializer.Serialize(new
            {
                model = modelName, dataset = datasetName, optimizer = optName, lr, batch_size = batchSize, epochs, seed,
                test_accuracy = testAcc, peak_working_set_mib = peak.Select(p => p / 1048576.0),
                history = history.Select(h => new
                {
                    epoch = h.Epoch + 1, train_loss = h.TrainLoss, train_accuracy = h.TrainAccuracy, test_loss = h.TestLoss, test_accuracy = h.TestAccuracy,
                    lr = h.Lr, seconds = h.Seconds, step_seconds = h.StepSeconds,
                }),
            }, new JsonSerializerOptions { WriteIndented = true }));
        if (main && a.Str("--plot") is string plot) Plot(history, plot, $"{modelName} on {datasetName}");
        Console.WriteLine($"test accuracy: {testAcc.ToString("F4", CultureInfo.InvariantCulture)}");
        return 0;
    }

    /// <summary>Loss (left axis) and accuracy (right axis) per epoch, train and test, as a PNG.</summary>
    private static void Plot(List<EpochResult> history, string path, string title)
    {
        var x = history.Select(h => (double)h.Epoch + 1).ToArray();
        var plt = new ScottPlot.Plot();
        plt.Add.Scatter(x, history.Select(h => h.TrainLoss).ToArray()).LegendText = "train loss";
        plt.Add.Scatter(x, history.Select(h => h.TestLoss).ToArray()).LegendText = "test loss";
        var trainAcc = plt.Add.Scatter(x, history.Select(h => h.TrainAccuracy).ToArray());
        trainAcc.LegendText = "train accuracy";
        trainAcc.Axes.YAxis = plt.Axes.Right;
        var testAcc = plt.Add.Scatter(x, history.Select(h => h.TestAccuracy).ToArray());
        testAcc.LegendText = "test accuracy";
        testAcc.Axes.YAxis = plt.Axes.Right;
        plt.Title(title);
        plt.XLabel("epoch");
        plt.Axes.Left.Label.Text = "loss";
        plt.Axes.Right.Label.Text = "accuracy";
        plt.ShowLegend();
        plt.SavePng(path, 900, 560);
        Console.WriteLine($"plot written to {path}");
    }

    private const string EvalHelp = """
        usage: autograd eval --checkpoint FILE [--dataset NAME]
          evaluates the checkpoint's model on the dataset's test split (default: the dataset it was trained on)
        """;

    public static int Eval(string[] argv)
    {
        if (Program.Help(argv, EvalHelp)) return 0;
        var a = new Args("eval", argv, ["--checkpoint", "--dataset"], []);
        var path = a.Str("--checkpoint") ?? throw new UsageException("eval: --checkpoint FILE is required");
        var meta = Checkpoint.ReadMetadata(path);
        var data = Load(a.Choice("--dataset", meta.GetValueOrDefault("dataset", "mnist"), Datasets));
        var model = CreateModel(meta.GetValueOrDefault("model", "lenet5"), data.SampleShape, data.Classes);
        Checkpoint.Load(path, model);
        var trainer = new Trainer(model, new SGD(model.Parameters()));
        var (loss, acc, top5) = trainer.Evaluate(new DataLoader(data.Test, EvalBatch, transform: data.Transform));
        Console.WriteLine($"test loss: {loss.ToString("F4", CultureInfo.InvariantCulture)}");
        Console.WriteLine($"top-5 accuracy: {top5.ToString("F4", CultureInfo.InvariantCulture)}");
        Console.WriteLine($"test accuracy: {acc.ToString("F4", CultureInfo.InvariantCulture)}");
        return 0;
    }

    private const string PredictHelp = """
        usage: autograd predict --checkpoint FILE IMAGE.png
          prints the class probabilities of one image (converted to the model's channels; its size must match the dataset's)
        """;

    public static int Predict(string[] argv)
    {
        if (Program.Help(argv, PredictHelp)) return 0;
        var a = new Args("predict", argv, ["--checkpoint"], []);
        var path = a.Str("--checkpoint") ?? throw new UsageException("predict: --checkpoint FILE is required");
        if (a.Positionals.Count != 1) throw new UsageException("predict: give exactly one IMAGE.png");
        var meta = Checkpoint.ReadMetadata(path);
        var data = Load(meta.GetValueOrDefault("dataset", "mnist"));
        var model = CreateModel(meta.GetValueOrDefault("model", "lenet5"), data.SampleShape, data.Classes);
        Checkpoint.Load(path, model);
        var image = Png.Read(a.Positionals[0]).ToTensor(data.SampleShape[0]);
        if (!image.Shape.SequenceEqual(data.SampleShape))
            throw new ArgumentException($"predict: image {a.Positionals[0]} is {string.Join("x", image.Shape)}, the model expects {string.Join("x", data.SampleShape)}");
        if (data.Transform != null) image = data.Transform.Apply(image);
        model.Eval();
        double[] probs;
        using (AutoGrad.NoGrad()) probs = Functional.Softmax(model.Call(image.Unsqueeze(0)), 1).ToDoubleArray();
        foreach (var (p, i) in probs.Select((p, i) => (p, i)).OrderByDescending(t => t.p))
            Console.WriteLine($"{data.ClassNames[i],-12} {p.ToString("F4", CultureInfo.InvariantCulture)}");
        return 0;
    }
}
