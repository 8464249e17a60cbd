"""The rows of the per-checkpoint path sums that every backend's ``steps_block`` accumulates.

For checkpoints ``x[i]`` with steps ``u = x[i+1] - x[i]`` and ``v = x[i+2] - x[i+1]``,
row ``r`` at column ``i`` sums, over the parameters:
"""

# sum x[i]^2
NORM2 = 0
# sum u^2
STEP2 = 1
# sum (v - u)^2, the bend: the side opposite a small turning angle
BEND2 = 2
# sum (u + v)^2 = sum (x[i+2] - x[i])^2, the skip: opposite pi minus a large one
SKIP2 = 3
# sum u v: the cosine of angles far from 0 and pi, whatever the steps' lengths
STEP_DOT = 4
N_PATH_SUMS = 5
