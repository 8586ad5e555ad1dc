"""Training recipe for the embedded model ``assets/models/anyflow-shapes`` (issue 4).

Stages, one command each (fixed seeds, resumable, work dir ``runs/`` by default):

    python -m training.vae        # fit the PCA-of-patches codec, write it into AutoencoderKLWan
    python -m training.teacher    # flow-matching teacher + tiny UMT5 text encoder, trained jointly
    python -m training.student    # any-step flow-map student distilled from teacher ODE segments
    python -m training.export     # save both AnyFlowPipeline folders under assets/models/

``python -m training.all`` runs the four in order (what the background job runs).
"""
