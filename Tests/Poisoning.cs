using NUnit.Framework;

/// <summary>For the whole test assembly (Tests, and PropertyTests, which compiles this file too): arrays allocated uninitialized are filled with NaN (see
/// <see cref="Autograd.DTypes.PoisonUninitialized"/>), so a kernel that leaves part of its result unwritten fails its tests.</summary>
[SetUpFixture]
public sealed class Poisoning
{
    /// <summary>Turns the poisoning on before any test runs.</summary>
    [OneTimeSetUp]
    public void On() => Autograd.DTypes.PoisonUninitialized = true;
}
