# GMP 6.3 from Python (gmpy2): a plain Chudnovsky binary splitting, the
# figure pi-ring's engine is held to (`pi-ring-bench --only pi` runs it
# when gmpy2 is installed: pip install gmpy2). Prints the seconds the
# computation took and the SHA-256 of the N fractional digits.
import hashlib
import sys
import time

from gmpy2 import isqrt, mpz


def split(a, b):
    if b - a == 1:
        if a == 0:
            p = q = mpz(1)
        else:
            p = mpz((6 * a - 5) * (2 * a - 1) * (6 * a - 1))
            q = mpz(a * a * a * 10939058860032000)
        t = p * (13591409 + 545140134 * a)
        return p, q, -t if a & 1 else t
    m = (a + b) // 2
    p1, q1, t1 = split(a, m)
    p2, q2, t2 = split(m, b)
    return p1 * p2, q1 * q2, t1 * q2 + p1 * t2


n = int(sys.argv[1])
started = time.perf_counter()
digits = n + 24
_, q, t = split(0, int(digits / 14.181647462725477) + 2)
one = mpz(10) ** digits
pi = 426880 * isqrt(10005 * one * one) * q // t
fraction = pi.digits(10)[1 : n + 1]
took = time.perf_counter() - started
print(took, hashlib.sha256(fraction.encode()).hexdigest())
