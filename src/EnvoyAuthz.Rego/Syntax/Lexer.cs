using System.Globalization;
using System.Text;

namespace EnvoyAuthz.Rego.Syntax;

internal enum Tok
{
    EOF, Ident, Number, String, RawString, Template,
    Dot, Comma, Semi, Colon, Assign, Unify, Eq, Neq, Lt, Lte, Gt, Gte,
    Plus, Minus, Star, Slash, Percent, Amp, Pipe,
    LParen, RParen, LBrack, RBrack, LBrace, RBrace,
}

internal struct Token
{
    public Tok Kind;
    public string Text;      // identifier, decoded string, number text, template raw body
    public int Line, Col, Pos, End;
    public bool NewlineBefore;
    public bool TemplateRaw; // template from $`...`
    public override readonly string ToString() => Kind + ":" + Text;
}

internal sealed class RegoParseException(string message, int line, int col) : Exception(message)
{
    public int Line { get; } = line;
    public int Col { get; } = col;

    /// <summary>A limit was hit (nesting depth, expression length): no other reading of the text can succeed, so the parser never backtracks over it.</summary>
    public bool IsLimit { get; init; }
}

internal static class Lexer
{
    public static List<Token> Lex(string src, int lineOffset = 0, int colOffset = 0) => Lex(src, lineOffset, colOffset, null);

    /// <summary>Lexes source; when <paramref name="comments"/> is given, collects comments as (line, text after '#').</summary>
    public static List<Token> Lex(string src, int lineOffset, int colOffset, List<(int Line, string Text)>? comments)
    {
        var toks = new List<Token>();
        int i = 0, line = 1, lineStart = 0;
        bool nl = true;
        while (true)
        {
            // whitespace and comments
            while (i < src.Length)
            {
                char c = src[i];
                if (c == '\n') { nl = true; i++; line++; lineStart = i; }
                else if (c == ' ' || c == '\t' || c == '\r') i++;
                else if (c == '#')
                {
                    int cs = i + 1;
                    while (i < src.Length && src[i] != '\n') i++;
                    comments?.Add((line + lineOffset, src[cs..i].TrimEnd('\r')));
                }
                else break;
            }
            var t = new Token { Line = line + lineOffset, Col = i - lineStart + 1 + (line == 1 ? colOffset : 0), Pos = i, NewlineBefore = nl, Text = "" };
            nl = false;
            if (i >= src.Length)
            {
                t.Kind = Tok.EOF;
                t.NewlineBefore = true;
                toks.Add(t);
                return toks;
            }
            char ch = src[i];
            if (char.IsAsciiLetter(ch) || ch == '_')
            {
                int s = i;
                while (i < src.Length && (char.IsAsciiLetterOrDigit(src[i]) || src[i] == '_')) i++;
                t.Kind = Tok.Ident;
                t.Text = src[s..i];
            }
            else if (char.IsAsciiDigit(ch) || (ch == '.' && i + 1 < src.Length && char.IsAsciiDigit(src[i + 1]) && false))
            {
                int s = i;
                while (i < src.Length && char.IsAsciiDigit(src[i])) i++;
                if (i + 1 < src.Length && src[i] == '.' && char.IsAsciiDigit(src[i + 1]))
                {
                    i++;
                    while (i < src.Length && char.IsAsciiDigit(src[i])) i++;
                }
                if (i < src.Length && (src[i] == 'e' || src[i] == 'E'))
                {
                    int save = i;
                    i++;
                    if (i < src.Length && (src[i] == '+' || src[i] == '-')) i++;
                    if (i < src.Length && char.IsAsciiDigit(src[i])) { while (i < src.Length && char.IsAsciiDigit(src[i])) i++; }
                    else i = save;
                }
                t.Kind = Tok.Number;
                t.Text = src[s..i];
                if (i < src.Length && (char.IsAsciiLetter(src[i]) || src[i] == '_'))
                    throw new RegoParseException("unexpected identifier after number", t.Line, t.Col);
            }
            else if (ch == '"')
            {
                i++;
                t.Kind = Tok.String;
                t.Text = ReadQuoted(src, ref i, t.Line, t.Col, template: false);
            }
            else if (ch == '`')
            {
                int s = ++i;
                while (i < src.Length && src[i] != '`') { if (src[i] == '\n') { line++; lineStart = i + 1; } i++; }
                if (i >= src.Length) throw new RegoParseException("non-terminated raw string", t.Line, t.Col);
                t.Kind = Tok.RawString;
                t.Text = src[s..i];
                i++;
            }
            else if (ch == '$' && i + 1 < src.Length && (src[i + 1] == '"' || src[i + 1] == '`'))
            {
                t.Kind = Tok.Template;
                bool raw = src[i + 1] == '`';
                t.TemplateRaw = raw;
                i += 2;
                int s = i;
                int depth = 0;
                while (true)
                {
                    if (i >= src.Length) throw new RegoParseException("non-terminated template string", t.Line, t.Col);
                    char c = src[i];
                    if (depth == 0 && c == (raw ? '`' : '"')) break;
                    if (c == '\n')
                    {
                        if (!raw && depth == 0) throw new RegoParseException("non-terminated template string", t.Line, t.Col);
                        line++; lineStart = i + 1;
                    }
                    if (c == '\\' && depth == 0 && (!raw || (i + 1 < src.Length && src[i + 1] == '{'))) { i += 2; continue; }
                    if (c == '{') depth++;
                    else if (c == '}' && depth > 0) depth--;
                    else if (depth > 0 && c == '"') { i++; SkipQuotedNested(src, ref i); continue; }
                    else if (depth > 0 && c == '`') { i++; while (i < src.Length && src[i] != '`') i++; }
                    else if (depth > 0 && c == '$' && i + 1 < src.Length && src[i + 1] == '"') { i += 2; SkipTemplateNested(src, ref i); continue; }
                    i++;
                }
                t.Text = src[s..i];
                i++;
            }
            else
            {
                i++;
                char n = i < src.Length ? src[i] : '\0';
                switch (ch)
                {
                    case '.': t.Kind = Tok.Dot; break;
                    case ',': t.Kind = Tok.Comma; break;
                    case ';': t.Kind = Tok.Semi; break;
                    case ':': if (n == '=') { i++; t.Kind = Tok.Assign; } else t.Kind = Tok.Colon; break;
                    case '=': if (n == '=') { i++; t.Kind = Tok.Eq; } else t.Kind = Tok.Unify; break;
                    case '!': if (n == '=') { i++; t.Kind = Tok.Neq; } else throw new RegoParseException("unexpected !", t.Line, t.Col); break;
                    case '<': if (n == '=') { i++; t.Kind = Tok.Lte; } else t.Kind = Tok.Lt; break;
                    case '>': if (n == '=') { i++; t.Kind = Tok.Gte; } else t.Kind = Tok.Gt; break;
                    case '+': t.Kind = Tok.Plus; break;
                    case '-': t.Kind = Tok.Minus; break;
                    case '*': t.Kind = Tok.Star; break;
                    case '/': t.Kind = Tok.Slash; break;
                    case '%': t.Kind = Tok.Percent; break;
                    case '&': t.Kind = Tok.Amp; break;
                    case '|': t.Kind = Tok.Pipe; break;
                    case '(': t.Kind = Tok.LParen; break;
                    case ')': t.Kind = Tok.RParen; break;
                    case '[': t.Kind = Tok.LBrack; break;
                    case ']': t.Kind = Tok.RBrack; break;
                    case '{': t.Kind = Tok.LBrace; break;
                    case '}': t.Kind = Tok.RBrace; break;
                    default: throw new RegoParseException($"illegal token {ch}", t.Line, t.Col);
                }
            }
            t.End = i;
            toks.Add(t);
        }
    }

    private static void SkipQuotedNested(string src, ref int i)
    {
        while (i < src.Length && src[i] != '"') { if (src[i] == '\\') i++; i++; }
        i++;
    }

    private static void SkipTemplateNested(string src, ref int i)
    {
        int depth = 0;
        while (i < src.Length)
        {
            char c = src[i];
            if (depth == 0 && c == '"') { i++; return; }
            if (c == '\\' && depth == 0) { i += 2; continue; }
            if (c == '{') depth++;
            else if (c == '}' && depth > 0) depth--;
            else if (depth > 0 && c == '"') { i++; SkipQuotedNested(src, ref i); continue; }
            else if (depth > 0 && c == '$' && i + 1 < src.Length && src[i + 1] == '"') { i += 2; SkipTemplateNested(src, ref i); continue; }
            i++;
        }
    }

    internal static string ReadQuoted(string src, ref int i, int line, int col, bool template)
    {
        var sb = new StringBuilder();
        while (true)
        {
            if (i >= src.Length || src[i] == '\n') throw new RegoParseException("non-terminated string", line, col);
            char c = src[i++];
            if (c == '"') break;
            if (c != '\\') { sb.Append(c); continue; }
            if (i >= src.Length) throw new RegoParseException("non-terminated string", line, col);
            char e = src[i++];
            switch (e)
            {
                case '"': sb.Append('"'); break;
                case '\\': sb.Append('\\'); break;
                case '/': sb.Append('/'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case '{' when template: sb.Append('{'); break;
                case 'u':
                    if (i + 4 > src.Length || !int.TryParse(src.AsSpan(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp))
                        throw new RegoParseException("invalid unicode escape", line, col);
                    sb.Append((char)cp);
                    i += 4;
                    break;
                default: throw new RegoParseException($"illegal escape sequence \\{e}", line, col);
            }
        }
        return sb.ToString();
    }
}
