using System.Globalization;
using System.Text;

namespace Autograd.Data;

/// <summary>Reader for labelled numeric CSV files such as scikit-learn's <c>digits.csv.gz</c>: one sample per line,
/// feature columns followed by an integer class label in the last column.</summary>
public static class Csv
{
    /// <summary>Reads a labelled CSV file (plain or gzip-compressed, detected by the magic bytes). A first line in which no
    /// field parses as a number is taken as a header and skipped; blank lines are skipped.</summary>
    /// <param name="path">The file.</param>
    /// <param name="numClasses">Labels must be integers in [0, numClasses).</param>
    /// <param name="featureCount">The number of feature columns every row must have, or null to take it from the first row.</param>
    /// <returns>Features row-major (<c>Rows x FeatureCount</c>), labels, and the sizes.</returns>
    /// <exception cref="InvalidDataException">A row with the wrong number of columns, a value that is not a number or a label
    /// outside the class range; the message names the file, the line, the column and the expected value.</exception>
    public static (float[] Features, long[] Labels, int Rows, int FeatureCount) ReadLabeled(string path, int numClasses, int? featureCount = null)
    {
        if (numClasses <= 0) throw new ArgumentOutOfRangeException(nameof(numClasses), $"Csv.ReadLabeled: numClasses must be positive, got {numClasses}");
        var text = Encoding.UTF8.GetString(DataFile.ReadAll(path));
        var features = new List<float>();
        var labels = new List<long>();
        int columns = featureCount is int f ? f + 1 : -1;
        bool first = true;
        int lineNo = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNo++;
            var line = rawLine.TrimEnd('\r').Trim();
            if (line.Length == 0) continue;
            if (lineNo == 1 && line[0] == '\uFEFF') line = line[1..];
            var fields = line.Split(',');
            if (first)
            {
                first = false;
                if (!fields.Any(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _))) continue;   // header: no numbers
            }
            if (columns < 0)
            {
                if (fields.Length < 2)
                    throw DataFile.Corrupt(path, $"column count of line {lineNo}", "at least 2 (features, then the label)", fields.Length.ToString());
                columns = fields.Length;
            }
            if (fields.Length != columns)
                throw DataFile.Corrupt(path, $"column count of line {lineNo}", $"{columns} ({columns - 1} features + label)", fields.Length.ToString());
            for (int c = 0; c < columns; c++)
            {
                if (!double.TryParse(fields[c], NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                    throw DataFile.Corrupt(path, $"line {lineNo}, column {c + 1}", "a number", $"'{fields[c]}'");
                if (c < columns - 1) { features.Add((float)v); continue; }
                if (v != Math.Floor(v) || v < 0 || v >= numClasses)
                    throw DataFile.Corrupt(path, $"label (line {lineNo}, column {c + 1})", $"an integer in 0..{numClasses - 1}", fields[c]);
                labels.Add((long)v);
            }
        }
        if (labels.Count == 0) throw DataFile.Corrupt(path, "rows", "at least one data row", "none");
        return (features.ToArray(), labels.ToArray(), labels.Count, columns - 1);
    }
}
