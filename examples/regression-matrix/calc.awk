# The program under test: one "A OP B" per line, the result times `scale` per line.
{
    a = $1; op = $2; b = $3
    if (op == "+") r = a + b
    else if (op == "-") r = a - b
    else if (op == "*") r = a * b
    else if (op == "/") r = (b == 0) ? "undefined" : int(a / b)
    else r = "bad operator " op
    if (r ~ /^-?[0-9]+$/) r = r * scale
    print r
}
