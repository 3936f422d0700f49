"""OTB split lists and frame-range exceptions (datasets.md §4, Appendix C).

Sequence names follow the got10k toolkit / GlobalTrack scheme: a directory
with two annotated targets yields `<Dir>.1` and `<Dir>.2` (Jogging,
Skating2); Human4's empty `groundtruth_rect.1.txt` is dropped, so it is just
`Human4`.
"""

from __future__ import annotations

# official: the 98 OTB-2015 directories (100 sequences) [got10k, pytracking].
OTB2015_DIRS: tuple[str, ...] = tuple("""
Basketball Biker Bird1 Bird2 BlurBody BlurCar1 BlurCar2 BlurCar3 BlurCar4
BlurFace BlurOwl Board Bolt Bolt2 Box Boy Car1 Car2 Car24 Car4 CarDark CarScale
ClifBar Coke Couple Coupon Crossing Crowds Dancer Dancer2 David David2 David3
Deer Diving Dog Dog1 Doll DragonBaby Dudek FaceOcc1 FaceOcc2 Fish FleetFace
Football Football1 Freeman1 Freeman3 Freeman4 Girl Girl2 Gym Human2 Human3
Human4 Human5 Human6 Human7 Human8 Human9 Ironman Jogging Jump Jumping KiteSurf
Lemming Liquor Man Matrix Mhyang MotorRolling MountainBike Panda RedTeam Rubik
Shaking Singer1 Singer2 Skater Skater2 Skating1 Skating2 Skiing Soccer Subway
Surfer Suv Sylvester Tiger1 Tiger2 Toy Trans Trellis Twinnings Vase Walking
Walking2 Woman
""".split())

# official: the 50 OTB-2013 (CVPR13) directories, 51 sequences with Jogging's
# two targets [got10k toolkit `otb.py`, GlobalTrack neuron].
OTB2013_DIRS: tuple[str, ...] = tuple("""
Basketball Bolt Boy Car4 CarDark CarScale Coke Couple Crossing David David2
David3 Deer Dog1 Doll Dudek FaceOcc1 FaceOcc2 Fish FleetFace Football
Football1 Freeman1 Freeman3 Freeman4 Girl Ironman Jogging Jumping Lemming
Liquor Matrix Mhyang MotorRolling MountainBike Shaking Singer1 Singer2
Skating1 Skiing Soccer Subway Suv Sylvester Tiger1 Tiger2 Trellis Walking
Walking2 Woman
""".split())

# official: TB-50, the 49-directory half of OTB-2015 (Appendix C).
TB50_DIRS: tuple[str, ...] = tuple("""
Basketball Biker Bird1 BlurBody BlurCar2 BlurFace BlurOwl Bolt Box Car1 Car4
CarDark CarScale ClifBar Couple Crowds David Deer Diving DragonBaby Dudek
Football Freeman4 Girl Human3 Human4 Human6 Human9 Ironman Jump Jumping Liquor
Matrix MotorRolling Panda RedTeam Shaking Singer2 Skating1 Skating2 Skiing
Soccer Surfer Sylvester Tiger2 Trellis Walking Walking2 Woman
""".split())

SUBSETS: dict[str, tuple[str, ...]] = {
    "otb2015": OTB2015_DIRS, "otb100": OTB2015_DIRS,
    "otb2013": OTB2013_DIRS, "otb50": TB50_DIRS, "tb50": TB50_DIRS,
}

# Sequences whose frames do not run 1..N (datasets.md §4.2): directory ->
# (first frame, last frame), inclusive; row k is frame first + k - 1.
# official: OTB sequence configs, as in got10k/pytracking.
FRAME_RANGES: dict[str, tuple[int, int]] = {
    "David": (300, 770),
    "BlurCar1": (247, 988),
    "BlurCar3": (3, 359),
    "BlurCar4": (18, 397),
    "Football1": (1, 74),
    "Freeman3": (1, 460),
    "Freeman4": (1, 283),
    "Diving": (1, 215),
}

# Frame-name digits; every other directory uses 4 (`img/0001.jpg`).
NAME_DIGITS: dict[str, int] = {"Board": 5}
