using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>Initialization schemes that several torchvision models share.</summary>
internal static class TorchvisionInit
{
    /// <summary>VGG's and MobileNetV2's scheme: convolutions Kaiming-normal (fan_out, ReLU gain) with zero bias, batch norm
    /// weight 1 and bias 0, linear layers N(0, 0.01) with zero bias.</summary>
    public static void KaimingConvsNormalLinears(Module root)
    {
        foreach (var m in root.Modules())
            switch (m)
            {
                case Conv2d conv:
                    Init.KaimingNormal(conv.Weight, mode: "fan_out", nonlinearity: "relu");
                    if (conv.Bias != null) Init.Zeros(conv.Bias);
                    break;
                case BatchNorm2d bn:
                    Init.Ones(bn.Weight!);
                    Init.Zeros(bn.Bias!);
                    break;
                case Linear fc:
                    Init.Normal(fc.Weight, 0, 0.01);
                    if (fc.Bias != null) Init.Zeros(fc.Bias);
                    break;
            }
    }
}
