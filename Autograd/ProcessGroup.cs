namespace Autograd;

/// <summary>The processes of a data-parallel job, as the layers below the distributed layer see them: synchronized batch
/// norm sums its statistics over it and the trainer sums its metrics over it. <c>Autograd.Distributed.Communicator</c>
/// implements it over MPI; a single process is a group of one.</summary>
public interface IProcessGroup
{
    /// <summary>This process's index, 0 to <see cref="WorldSize"/> - 1.</summary>
    int Rank { get; }

    /// <summary>Number of processes.</summary>
    int WorldSize { get; }

    /// <summary>Replaces <paramref name="values"/> by its element-wise sum over every process. A collective: every process
    /// calls it, in the same order relative to its other collectives, with arrays of the same length.</summary>
    void AllReduceSum(double[] values);
}
