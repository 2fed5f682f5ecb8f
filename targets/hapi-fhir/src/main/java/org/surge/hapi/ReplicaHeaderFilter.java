package org.surge.hapi;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.stereotype.Component;
import org.springframework.web.filter.OncePerRequestFilter;

/**
 * Names this replica on every answer (X-Served-By), as HAProxy does for the
 * answers it relays: surge's read-backs straight from a replica and through
 * the balancer then count under the same replica name.
 */
@Component
public class ReplicaHeaderFilter extends OncePerRequestFilter {
    private final String replica;

    public ReplicaHeaderFilter(@Value("${surge.replica-name:r0}") String replica) {
        this.replica = replica;
    }

    @Override
    protected void doFilterInternal(HttpServletRequest request, HttpServletResponse response, FilterChain chain)
            throws ServletException, IOException {
        response.setHeader("X-Served-By", replica);
        chain.doFilter(request, response);
    }
}
