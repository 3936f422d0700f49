"""UAV123 / UAV20L sequence tables (datasets.md §5, Appendix B).

Each entry is name -> (image folder under `data_seq/UAV123/`, first frame,
last frame), inclusive; row i (1-based) of `anno/<set>/<name>.txt` is frame
first + i - 1. official: `uav123.json` of the got10k toolkit / GlobalTrack.
"""

from __future__ import annotations

# The 51 UAV123 entries that split a video into sub-ranges:
# name folder first last.
_UAV123_SPLIT = """
bird1_1 bird1 1 253; bird1_2 bird1 775 1477; bird1_3 bird1 1573 2437;
car1_1 car1 1 751; car1_2 car1 751 1627; car1_3 car1 1627 2629;
car6_1 car6 1 487; car6_2 car6 487 1807; car6_3 car6 1807 2953;
car6_4 car6 2953 3925; car6_5 car6 3925 4861; car8_1 car8 1 1357;
car8_2 car8 1357 2575; car16_1 car16 1 415; car16_2 car16 415 1993;
group1_1 group1 1 1333; group1_2 group1 1333 2515;
group1_3 group1 2515 3925; group1_4 group1 3925 4873;
group2_1 group2 1 907; group2_2 group2 907 1771; group2_3 group2 1771 2683;
group3_1 group3 1 1567; group3_2 group3 1567 2827;
group3_3 group3 2827 4369; group3_4 group3 4369 5527;
person2_1 person2 1 1189; person2_2 person2 1189 2623;
person4_1 person4 1 1501; person4_2 person4 1501 2743;
person5_1 person5 1 877; person5_2 person5 877 2101;
person7_1 person7 1 1249; person7_2 person7 1249 2065;
person8_1 person8 1 1075; person8_2 person8 1075 1525;
person12_1 person12 1 601; person12_2 person12 601 1621;
person14_1 person14 1 847; person14_2 person14 847 1813;
person14_3 person14 1813 2923; person17_1 person17 1 1501;
person17_2 person17 1501 2347; person19_1 person19 1 1243;
person19_2 person19 1243 2791; person19_3 person19 2791 4357;
truck4_1 truck4 1 577; truck4_2 truck4 577 1261;
uav1_1 uav1 1 1555; uav1_2 uav1 1555 2377; uav1_3 uav1 2473 3469
"""

# The other 72 UAV123 entries: folder = name, frames 1..last (name last).
_UAV123_WHOLE = """
bike1 3085 bike2 553 bike3 433 boat1 901 boat2 799 boat3 901 boat4 553
boat5 505 boat6 805 boat7 535 boat8 685 boat9 1399 building1 469
building2 577 building3 829 building4 787 building5 481 car2 1321 car3 1717
car4 1345 car5 745 car7 1033 car9 1879 car10 1405 car11 337 car12 499
car13 415 car14 1327 car15 469 car17 1057 car18 1207 person1 799 person3 643
person6 901 person9 661 person10 1021 person11 721 person13 883
person15 1339 person16 1147 person18 1393 person20 1783 person21 487
person22 199 person23 397 truck1 463 truck2 385 truck3 535 uav2 133
uav3 265 uav4 157 uav5 139 uav6 109 uav7 373 uav8 301 wakeboard1 421
wakeboard2 733 wakeboard3 823 wakeboard4 697 wakeboard5 1675
wakeboard6 1165 wakeboard7 199 wakeboard8 1543 wakeboard9 355
wakeboard10 469 car1_s 1475 car2_s 320 car3_s 1300 car4_s 830
person1_s 1600 person2_s 250 person3_s 505
"""

# UAV20L: folder = name, frames 1..last, images shared with UAV123's folders.
_UAV20L = """
bike1 3085 bird1 2437 car1 2629 car3 1717 car6 4861 car8 2575 car9 1879
car16 1993 group1 4873 group2 2683 group3 5527 person2 2623 person4 2743
person5 2101 person7 2065 person14 2923 person17 2347 person19 4357
person20 1783 uav1 3469
"""

Table = dict[str, tuple[str, int, int]]


def _whole(text: str) -> Table:
  tokens = text.split()
  return {n: (n, 1, int(e)) for n, e in zip(tokens[::2], tokens[1::2])}


def _split(text: str) -> Table:
  table = {}
  for item in text.replace("\n", " ").split(";"):
    name, folder, first, last = item.split()
    table[name] = (folder, int(first), int(last))
  return table


UAV123: Table = {**_split(_UAV123_SPLIT), **_whole(_UAV123_WHOLE)}
UAV20L: Table = _whole(_UAV20L)
