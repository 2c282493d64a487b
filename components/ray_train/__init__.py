"""Ray Train plumbing: the launchers that run `components.training.loop` on Ray workers, the same loop
the in-process launcher runs (`components.training.launch`). Nothing here is the method.

    runtime        the Ray runtime of one lfsd process (started or joined once), its storage and temp dirs
    job            one Ray Train fit per task (a single `lfsd onboard`), with fault tolerance and resume
    warm           one fit for a whole sequence: a worker group started once trains task after task
    worker         what a worker does for one task, whichever fit runs it
    progress_file  a worker's training progress passed to the driver's bar through one small file
"""
