"""Offline annotation spread over a Ray cluster (``annotate --ray``): ``cluster`` joins or
starts one and places the workers, ``worker`` is the actor that segments chunks, ``scheduler``
hands chunks out, ``packing`` carries masks back, ``annotate`` writes each input as a single
process would."""
