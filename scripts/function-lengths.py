#!/usr/bin/env python3
"""Lists Swift functions (func, init, deinit, subscript, computed accessors are not counted) longer
than a limit, by brace matching on code with strings and comments removed:
    scripts/function-lengths.py [--limit 60] DIR...
Generated code (*.pb.swift) is skipped. Exit status 1 when any function is longer."""
import re, sys, os

def strip(text):
    # Remove comments and string literals (multi-line strings included), keeping newlines.
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith('//', i):
            j = text.find('\n', i); i = n if j < 0 else j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2); j = n if j < 0 else j + 2
            out.append('\n' * text.count('\n', i, j)); i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3); j = n if j < 0 else j + 3
            out.append('""' + '\n' * text.count('\n', i, j)); i = j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            out.append('""'); i = j + 1
        else:
            out.append(text[i]); i += 1
    return ''.join(out)

decl = re.compile(r'\b(func\s+[^\s(<]+|init[?!]?\s*[(<]|deinit\b)')
args = sys.argv[1:]
limit = 60
if args[:1] == ['--limit']:
    limit, args = int(args[1]), args[2:]
long = []
for root in args:
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith('.swift') or f.endswith('.pb.swift'):
                continue
            path = os.path.join(dirpath, f)
            code = strip(open(path, encoding='utf-8').read())
            for m in decl.finditer(code):
                start = code.find('{', m.end())
                if start < 0:
                    continue
                # a protocol requirement has no body before the next declaration or line end
                between = code[m.end():start]
                if '\n}' in between or re.search(r'\bfunc\b|\bvar\b|\blet\b', between):
                    continue
                depth, j = 0, start
                while j < len(code):
                    if code[j] == '{': depth += 1
                    elif code[j] == '}':
                        depth -= 1
                        if depth == 0: break
                    j += 1
                first = code.count('\n', 0, m.start()) + 1
                lines = code.count('\n', m.start(), j) + 1
                if lines > limit:
                    name = m.group(1).replace('func', '').strip()
                    long.append((lines, f"{path}:{first}", name))
for lines, where, name in sorted(long, reverse=True):
    print(f"{lines:5}  {where}  {name}")
sys.exit(1 if long else 0)
