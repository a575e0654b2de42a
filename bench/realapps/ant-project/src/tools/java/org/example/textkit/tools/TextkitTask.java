package org.example.textkit.tools;

import java.io.File;
import java.io.IOException;
import org.apache.tools.ant.BuildException;
import org.apache.tools.ant.Task;
import org.example.textkit.Main;

/**
 * Runs the textkit demo and writes the report inside the Ant JVM, as a task of the build's own
 * (a java task with fork="false" would need a SecurityManager, which JDK 18+ no longer allows).
 */
public final class TextkitTask extends Task {
    private File csv;
    private File report;

    /** Ant resolves a File attribute against the project's base directory. */
    public void setCsv(File csv) {
        this.csv = csv;
    }

    public void setReport(File report) {
        this.report = report;
    }

    @Override
    public void execute() {
        if (csv == null || report == null) {
            throw new BuildException("textkit needs csv and report", getLocation());
        }
        try {
            Main.main(new String[0]);
            Report.main(new String[] {csv.getPath(), report.getPath()});
        } catch (IOException e) {
            throw new BuildException(e, getLocation());
        }
    }
}
