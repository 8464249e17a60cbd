"""The visual report of ``wtraj analyze``: embedding, figures, HTML page and atomic output.

- :mod:`wtraj.report.embedding`: classical MDS of a distance matrix (no N×D data needed);
- :mod:`wtraj.report.plots`: the figures, from arrays, with matplotlib's Agg backend;
- :mod:`wtraj.report.html`: one self-contained ``report.html`` with the figures embedded;
- :mod:`wtraj.report.writer`: an output folder built aside and renamed into place when complete;
- :mod:`wtraj.report.output_target`: where it may go: never an input, and replacing only a
  report wtraj wrote (its marker file), checked before the analysis;
- :mod:`wtraj.report.work_folder`: the locked hidden folder it is built in, and the sweep of
  those left by runs that died;
- :mod:`wtraj.report.signals`: SIGTERM and SIGHUP turned into an exception, so that cleanup runs;
- :mod:`wtraj.report.analysis`: the ``analyze`` job, from checkpoint paths to every number;
- :mod:`wtraj.report.build`: those numbers written as files, figures and the page.
"""
