"""A YAML alias bomb for the input-limit tests (parsers alone, and a live worker's HTTP API)."""

# "Billion laughs": 9 levels of 9 aliases, ~340 bytes, 9^9 (387 million) strings once expanded.
BOMB = "".join(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
BOMB = 'a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n' + BOMB
